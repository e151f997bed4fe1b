"""Labelled steps as flat arrays, for batched fleet runs (one process, no segments, no log), and every
step's transition for the goal critic.

    labels = LabelBuffer(obs_dim=8, act_dim=2); labels.add(obs, actions)
    labels.transitions.add(obs, actions, success, next_obs, terminal)
    batch = labels.sample(1024)       # obs, action, normalizer: what Learner.train expects
"""

from __future__ import annotations

import numpy as np

from buffers.storage import Column, Moments
from buffers.transitions import TransitionStore


class LabelBuffer:
    def __init__(self, obs_dim: int, act_dim: int, seed: int = 0):
        self.obs, self.action = Column(np.float32, obs_dim), Column(np.float32, act_dim)
        self.obs_moments, self.act_moments = Moments(obs_dim), Moments(act_dim)
        self.transitions = TransitionStore(obs_dim, act_dim)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.obs.n

    def add(self, obs: np.ndarray, action: np.ndarray) -> None:
        self.obs.extend(obs)
        self.action.extend(action)
        self.obs_moments.update(obs)
        self.act_moments.update(action)

    def sample(self, count: int, horizon: int = 1, history: int = 1) -> dict | None:
        if horizon > 1 or history > 1:
            raise ValueError("a LabelBuffer holds single steps, not the action chunks or observation histories a "
                             f"policy of horizon {horizon} / history {history} trains on: use a ReplayBuffer")
        if not len(self):
            return None
        idx = self.rng.integers(0, len(self), count)
        return {"obs": self.obs.view()[idx], "action": self.action.view()[idx],
                "normalizer": (*self.obs_moments.mean_std(1e-6), *self.act_moments.mean_std(1e-6))}

    def sample_transitions(self, count: int) -> dict | None:
        return self.transitions.sample(count, self.rng)

    def stats(self) -> dict[str, int]:
        """Counts, named as a ReplayBuffer's: every step it holds is labelled."""
        return {"stored_steps": len(self), "labelled_steps": len(self)}
