"""Transitions for the critics: every step, the policy's and the humans', with reward 1 at success (the goal
critic) and whether the step violated the task's constraint (the hazard critic).

A segment's last step gets its next observation from the robot's next segment of the same episode;
a step whose successor never arrives (the run stopped) is left out.

    store = TransitionStore(obs_dim=10, act_dim=2)
    store.add_segment(seg)                        # or store.add(obs, act, reward, next_obs, terminal)
    batch = store.sample(256, rng)                # obs, action, reward, next_obs, terminal, violation
"""

from __future__ import annotations

import numpy as np

from buffers.schema import Segment
from buffers.storage import Column

#: ThriftyDAgger up-samples successful transitions to this share of each critic batch
POSITIVE_FRACTION = 0.1


class TransitionStore:
    def __init__(self, obs_dim: int, act_dim: int):
        self.obs, self.next_obs = Column(np.float32, obs_dim), Column(np.float32, obs_dim)
        self.action = Column(np.float32, act_dim)
        self.reward, self.terminal, self.violation = Column(np.float32), Column(np.float32), Column(np.float32)
        self.positives = Column(np.int64)
        self.open: dict[int, Segment] = {}  # robot -> its segment whose last step waits for a next observation

    def __len__(self) -> int:
        return self.obs.n

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminal: np.ndarray, violation: np.ndarray | None = None) -> None:
        self.positives.extend(len(self) + np.flatnonzero(reward > 0))
        self.violation.extend(np.zeros(len(obs), np.float32) if violation is None else violation)
        self.obs.extend(obs)
        self.action.extend(action)
        self.reward.extend(reward)
        self.next_obs.extend(next_obs)
        self.terminal.extend(terminal)

    def add_segment(self, seg: Segment) -> None:
        """Adds seg's steps; the previous segment's waiting last step if seg continues its episode."""
        n = len(seg)
        if n == 0:
            return
        waiting = self.open.pop(seg.robot, None)
        joined = waiting is not None and waiting.episode == seg.episode
        ends = bool(seg.done[-1] or seg.success[-1])
        if not ends:
            self.open[seg.robot] = seg
        own = n if ends else n - 1  # seg's steps added now; a last one that does not end waits for its successor
        start, count = len(self), own + joined
        if count == 0:
            return
        # each column filled in place: [waiting's last step,] then seg's first `own` steps
        for column, name in ((self.obs, "obs"), (self.action, "action"), (self.reward, "success"),
                             (self.terminal, "done"), (self.violation, "constraint")):
            rows = column.reserve(count)
            if joined:
                rows[0] = getattr(waiting, name)[-1]
            rows[joined:] = getattr(seg, name)[:own]
        reward, terminal = self.reward.view()[start:], self.terminal.view()[start:]
        np.maximum(terminal, reward, out=terminal)  # an episode ends at success too
        nxt = self.next_obs.reserve(count)
        if joined:
            nxt[0] = seg.obs[0]
        nxt[joined:joined + n - 1] = seg.obs[1:]
        if ends:  # a final step's next_obs is unused: its own observation
            nxt[-1] = seg.obs[-1]
        if reward.any():
            self.positives.extend(start + np.flatnonzero(reward))

    def sample(self, count: int, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
        """count transitions, POSITIVE_FRACTION of them successes when any exist; None while empty."""
        if not len(self):
            return None
        n_pos = int(round(POSITIVE_FRACTION * count)) if self.positives.n else 0
        idx = np.concatenate([rng.integers(0, len(self), count - n_pos),
                              self.positives.view()[rng.integers(0, max(1, self.positives.n), n_pos)]])
        return {"obs": self.obs.view()[idx], "action": self.action.view()[idx], "reward": self.reward.view()[idx],
                "next_obs": self.next_obs.view()[idx], "terminal": self.terminal.view()[idx],
                "violation": self.violation.view()[idx]}
