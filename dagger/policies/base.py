"""What every policy family shares: the normaliser, the version, the weights, the training step's frame and the
learned signals the gates read (goal critic, hazard critic, discrepancy classifier).

A family subclasses BasePolicy and supplies its networks and its math:

    nets()                     -> {"policy": module, ...}     (the weights, besides the encoder and the signals)
    bc_loss(batch, weight)     -> a scalar loss on a normalised batch (see `update`)
    bc_step(batch, weight)     -> (optional) one optimiser step on it without autograd (see apply_grads)
    propose_batch(seen, pixels, streams) -> [Proposal]: each robot's action, samples, uncertainty (normalised units)
    greedy(obs, image)         -> [B, act_dim] normalised actions, no gradient (critic targets, labels)
    stream_type                -> (optional) a Stream subclass: the family's episode state besides the history

A robot's episode state (observation history, queued chunks, the plan being executed, its own random draws) lives
in its Stream, not on the policy, so one policy acts for a group of robots in one batched pass:

    policy = make_policy(PolicyConfig(type="diffusion"), obs_dim=10, act_dim=2)
    streams = [policy.stream(robot) for robot in range(4)]   # each draws as make_policy(..., seed=robot) would
    outs = policy.act_batch(obs, images, streams)  # obs [4, obs_dim]; images [4, H, W, 3] or None
    streams[2].reset()                             # robot 2 starts a new episode
    out = policy.act(obs[0])                       # one robot: the policy's own stream (policy.reset() resets it)
    losses = policy.update(batch)                  # one training step; the learner calls it
    policy.load(other.weights())                   # only a newer version is taken
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam

from dagger.core import PolicyOutput
from dagger.critics import DiscrepancyClassifier, GoalCritic
from dagger.gates.safe import discrepancy
from dagger.nets import ImageEncoder, random_shift
from dagger.policies.families import PolicyConfig

#: with a classifier to train, every HOLDOUT-th stored segment is kept from behaviour cloning for it (SafeDAgger
#: holds out a set of demonstrations the same way)
HOLDOUT = 10


@dataclass
class Proposal:
    """A family's decision in one state, in normalised action units."""

    action: torch.Tensor  # [act_dim]: what the robot executes
    samples: torch.Tensor  # [S, act_dim]: the member predictions / sampled actions behind it
    spread: float | None = None  # the family's uncertainty; None: the samples' variance in the task's units


@dataclass(eq=False)
class Stream:
    """One robot's episode with a policy: what acting carries from step to step. Families with more state (queued
    chunks, a plan, their own random draws) extend it; `reset` starts a new episode and never reseeds a generator
    (draws go on across episodes, as one robot's own policy's did)."""

    robot: int  # whose episode; a family seeds the stream's draws from it as it seeds a policy's from its seed
    history: int = 1  # observations the policy sees (BasePolicy.history)
    recent: deque[torch.Tensor] = field(init=False)  # this episode's last `history` normalised obs

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.history)

    def reset(self) -> None:
        self.recent.clear()

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """Adds this step's normalised obs [obs_dim]; returns the last `history` of them [history, obs_dim], the
        first repeated at an episode's start."""
        self.recent.append(x)
        while len(self.recent) < self.history:
            self.recent.appendleft(self.recent[0])
        return torch.stack(list(self.recent))


class BasePolicy:
    """The frame of a policy family; see the module docstring for what a family supplies."""

    family = "base"
    members = 1  # independent batches per training step (an ensemble's online bootstrap)
    horizon = 1  # actions per training sample (a chunk): batch["action"] is [M, B, horizon, act_dim] when > 1
    history = 1  # observations per sample: batch["obs"] is [M, B, history, obs_dim] when > 1
    shape_keys: tuple[str, ...] = ("hidden",)  # a family's shape_keys and defaults: its FAMILIES entry (families.py)
    defaults: tuple[str, ...] = ()
    stream_type: type[Stream] = Stream  # what stream() makes: act_batch refuses another kind

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None):
        self.config, self.obs_dim, self.act_dim, self.seed = config, obs_dim, act_dim, seed
        self.encoder = ImageEncoder(seed=seed) if image_shape is not None else None
        self.augment = torch.Generator().manual_seed(seed)  # the random shifts of training images
        self.width = obs_dim + (self.encoder.out_dim if self.encoder is not None else 0)  # what the nets see
        # the signals see the state only: the gates that read them refuse image tasks (dagger.config)
        self.critic = GoalCritic(obs_dim, act_dim, config.hidden, config.gamma, seed=seed)
        self.hazard = GoalCritic(obs_dim, act_dim, config.hidden, config.risk_gamma, seed=seed + 2)
        self.classifier = DiscrepancyClassifier(obs_dim, config.hidden, seed=seed)
        self.obs_mean = np.zeros(obs_dim, np.float32)
        self.obs_std = np.ones(obs_dim, np.float32)
        self.act_mean = np.zeros(act_dim, np.float32)
        self.act_std = np.ones(act_dim, np.float32)
        self.train_gap = 0.0  # mean ‖π(o) − a‖² over recent training labels (ThriftyDAgger's hand-back bar)
        self.version = 0
        self._own: Stream | None = None  # act()'s stream, made on first use: stream(seed)
        self._optimizer: torch.optim.Optimizer | None = None

    # -- what a family supplies -------------------------------------------------------------------------------
    def nets(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def bc_loss(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def propose_batch(self, seen: torch.Tensor, pixels: torch.Tensor | None,
                      streams: Sequence[Stream]) -> list[Proposal]:
        """Robot i's decision from seen[i] (normalised obs [K, obs_dim], or [K, history, obs_dim] when history > 1)
        and pixels[i] (uint8 [K, H, W, 3] on an image task), carrying streams[i]'s episode on; random draws come
        from each stream's own generator."""
        raise NotImplementedError

    def greedy(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def stream(self, robot: int) -> Stream:
        """A fresh episode for robot `robot`, acting as make_policy(..., seed=robot) would on its own."""
        return self.stream_type(robot, self.history)

    @property
    def own(self) -> Stream:
        """act()'s stream: the policy's own episode, drawing as its seed says."""
        if self._own is None:
            self._own = self.stream(self.seed)
        return self._own

    @property
    def recent(self) -> deque[torch.Tensor]:
        """The own stream's observation history."""
        return self.own.recent

    def reset(self) -> None:
        """A new episode for act(): forget the observation history (and queued actions); draws go on."""
        self.own.reset()

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.trainable(), lr=self.config.lr)

    def bc_step(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        """One optimiser step on bc_loss by autograd; returns the loss."""
        loss = self.bc_loss(batch, weight)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def apply_grads(self, grads: list[torch.Tensor]) -> None:
        """What optimizer.step() does with these gradients (one per trainable() parameter) for make_optimizer's
        Adam, in torch's fused kernel on the optimiser's own state, without the step's per-call Python work."""
        group = self.optimizer.param_groups[0]
        state = [self.optimizer.state[p] for p in group["params"]]
        for p, s in zip(group["params"], state, strict=True):
            if not s:  # as Adam's first step starts it
                s.update(step=torch.zeros((), dtype=torch.float32), exp_avg=torch.zeros_like(p),
                         exp_avg_sq=torch.zeros_like(p))
        beta1, beta2 = group["betas"]
        adam(group["params"], grads, [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state], [],
             [s["step"] for s in state], fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
             weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"])

    # -- shared ------------------------------------------------------------------------------------------------
    def trainable(self) -> list[nn.Parameter]:
        """What behaviour cloning trains: the family's networks and the image encoder they share."""
        modules = [*self.nets().values(), *([self.encoder] if self.encoder is not None else [])]
        return [p for module in modules for p in module.parameters()]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = self.make_optimizer()
        return self._optimizer

    def set_normalizer(self, obs_mean: np.ndarray, obs_std: np.ndarray,
                       act_mean: np.ndarray, act_std: np.ndarray) -> None:
        self.obs_mean, self.obs_std = obs_mean.astype(np.float32), np.maximum(obs_std, 1e-3).astype(np.float32)
        self.act_mean, self.act_std = act_mean.astype(np.float32), np.maximum(act_std, 1e-3).astype(np.float32)

    def norm_obs(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs, dtype=torch.float32)
        return (obs - torch.from_numpy(self.obs_mean)) / torch.from_numpy(self.obs_std)

    def norm_act(self, act: np.ndarray | torch.Tensor) -> torch.Tensor:
        act = torch.as_tensor(act, dtype=torch.float32)
        return (act - torch.from_numpy(self.act_mean)) / torch.from_numpy(self.act_std)

    def units(self, act: torch.Tensor) -> np.ndarray:
        """Normalised actions -> the task's units (numpy)."""
        return act.detach().numpy() * self.act_std + self.act_mean

    def features(self, obs: torch.Tensor, image: np.ndarray | torch.Tensor | None = None,
                 augment: bool = False) -> torch.Tensor:
        """What the nets see: normalised obs [..., obs_dim] (the newest, when obs carries a history axis
        [..., history, obs_dim] the caller keeps), with the image's encoding [..., F] before it on an image task
        (image uint8 [..., H, W, 3]; `augment`: randomly shifted, for training)."""
        if self.encoder is None:
            return obs
        if image is None:
            raise ValueError("this policy sees camera images: act(obs, image) needs the task's image")
        pixels = torch.as_tensor(image)
        lead = pixels.shape[:-3]
        flat = pixels.reshape(-1, *pixels.shape[-3:])
        z = self.encoder(random_shift(flat, generator=self.augment) if augment else flat)
        return torch.cat([z.reshape(*lead, -1), obs], -1)

    def with_history(self, obs: torch.Tensor) -> torch.Tensor:
        """[B, obs_dim] -> [B, history, obs_dim] by repeating the one observation (a state with no past, as at
        an episode's start); unchanged when the family sees one observation."""
        return obs if self.history == 1 else obs[:, None].expand(-1, self.history, -1)

    def act(self, obs: np.ndarray, image: np.ndarray | None = None, instruction: str = "") -> PolicyOutput:
        """This step's action with the family's uncertainty and the signals the gates read; obs in task units. The
        families here are not language-conditioned: a policy server hands them the task's instruction, they ignore
        it."""
        pixels = None if image is None else np.asarray(image)[None]
        return self.act_batch(np.asarray(obs, np.float32)[None], pixels, [self.own])[0]

    def act_batch(self, obs: np.ndarray, images: np.ndarray | None, streams: Sequence[Stream]) -> list[PolicyOutput]:
        """act() for K robots in one pass: obs [K, obs_dim] in task units, images uint8 [K, H, W, 3] (image tasks)
        or None, streams[i] robot i's episode (from stream()). Robot i's output is what its own policy's act() gives
        (make_policy(..., seed=streams[i].robot), these weights loaded), to float rounding."""
        x = self.norm_obs(self.checked_batch(obs, images, streams))
        if not streams:
            return []
        if self.history > 1:
            seen = torch.stack([s.observe(row) for s, row in zip(streams, x, strict=True)])
        else:
            seen = x
            for s, row in zip(streams, x, strict=True):
                s.recent.append(row)
        pixels = None if images is None else torch.as_tensor(np.asarray(images))
        with torch.no_grad():
            proposals = self.propose_batch(seen, pixels, streams)
            actions = torch.stack([p.action for p in proposals])
            safety = self.critic.q(x, actions).min(0).values.numpy()  # the twins' [2, K]
            risk = self.hazard.q(x, actions).max(0).values.numpy()
            p_safe = self.classifier.p_safe(x).numpy()
        acts = self.units(actions)
        if len({p.samples.shape for p in proposals}) == 1:  # the task's units for every robot at once
            every = self.units(torch.stack([p.samples for p in proposals]))
            samples, spreads = list(every), every.var(1).mean(-1).tolist()
        else:  # e.g. chunking at an episode's start, with fewer live chunks for some robots
            samples = [self.units(p.samples) for p in proposals]
            spreads = [float(s.var(0).mean()) for s in samples]
        return [PolicyOutput(acts[i], float(spreads[i]) if p.spread is None else float(p.spread), self.version,
                             safety=float(safety[i]), p_safe=float(p_safe[i]), train_gap=self.train_gap,
                             risk=float(risk[i]), samples=samples[i]) for i, p in enumerate(proposals)]

    def checked_batch(self, obs: np.ndarray, images: np.ndarray | None, streams: Sequence[Stream]) -> np.ndarray:
        """obs as float32 [K, obs_dim]; a ValueError (TypeError for a stream of another kind) naming what is off."""
        obs = np.asarray(obs, np.float32)
        k = len(streams)
        if obs.shape != (k, self.obs_dim):
            raise ValueError(f"act_batch: obs has shape {obs.shape}; {k} streams need ({k}, {self.obs_dim})")
        if images is not None and len(images) != k:
            raise ValueError(f"act_batch: {len(images)} images for {k} streams")
        if len({id(s) for s in streams}) != k:
            raise ValueError("act_batch: a stream appears twice (one step per robot per call)")
        for s in streams:
            if not isinstance(s, self.stream_type):
                raise TypeError(f"act_batch: robot {s.robot}'s stream is a {type(s).__name__}; this {self.family} "
                                f"policy keeps a {self.stream_type.__name__} (make it with policy.stream(robot))")
        return obs

    def update(self, batch: dict[str, Any], transitions: dict[str, np.ndarray] | None = None,
               needs: tuple[str, ...] = (), tau_sup: float = 0.008) -> dict[str, float]:
        """One training step on a batch in task units — obs [M, B, (history,) obs_dim], action
        [M, B, (horizon,) act_dim], pad [M, B, horizon] (True: past its segment's end), segment [M, B], image
        [M, B, H, W, 3] — with M = `members`. With `transitions`, one Bellman step of each critic in `needs`
        ("critic", "hazard"); with "classifier" in `needs`, every HOLDOUT-th segment trains the classifier
        (label: the policy's action within `tau_sup` of the human's) instead of the policy.
        Returns the losses by name ("bc", "critic", "hazard", "classifier")."""
        held = torch.as_tensor(batch["segment"]) % HOLDOUT == 0 if "classifier" in needs else None
        normed = {"obs": self.norm_obs(batch["obs"]), "action": self.norm_act(batch["action"])}
        for key in ("pad", "image"):
            if key in batch:
                normed[key] = torch.as_tensor(batch[key])
        losses = {"bc": self.bc_step(normed, None if held is None else (~held).float()).item()}
        for name in ("critic", "hazard"):
            if transitions is not None and name in needs:
                losses[name] = self.update_critic(transitions) if name == "critic" else self.update_hazard(transitions)
        if held is not None and bool(held.any()):
            now = self.newest(normed["obs"])[held]
            with torch.no_grad():
                mine = self.units(self.greedy(self.with_history(now)))
            label = self.newest_action(np.asarray(batch["action"])[held.numpy()])
            safe = torch.from_numpy((discrepancy(mine, label) < tau_sup).astype(np.float32))
            losses["classifier"] = self.classifier.update(now, safe)
        return losses

    def newest(self, obs: Any) -> Any:
        """The newest observation of each sample, [..., obs_dim], from a batch's obs."""
        return obs[..., -1, :] if self.history > 1 else obs

    def newest_action(self, act: Any) -> Any:
        """The label of the step itself (a chunk's first action), [..., act_dim], from a batch's action."""
        return act[..., 0, :] if self.horizon > 1 else act

    def measure_gap(self, batch: dict[str, Any]) -> float:
        """Sets train_gap: the mean ‖π(o) − a‖² (task units) over one member's part of a training batch."""
        obs = self.norm_obs(batch["obs"][0])
        image = torch.as_tensor(batch["image"][0]) if "image" in batch else None
        with torch.no_grad():
            mine = self.units(self.greedy(obs, image))
        self.train_gap = float(((mine - self.newest_action(batch["action"][0])) ** 2).sum(-1).mean())
        return self.train_gap

    def update_critic(self, batch: dict[str, np.ndarray], critic: GoalCritic | None = None) -> float:
        """One Bellman step of `critic` (default: the goal critic) on transitions; the next action is π's."""
        critic = critic or self.critic
        obs, next_obs = self.norm_obs(batch["obs"]), self.norm_obs(batch["next_obs"])
        with torch.no_grad():
            next_act = self.greedy(self.with_history(next_obs))
        return critic.update(obs, self.norm_act(batch["action"]), torch.from_numpy(batch["reward"]), next_obs,
                             next_act, torch.from_numpy(batch["terminal"]))

    def update_hazard(self, batch: dict[str, np.ndarray]) -> float:
        """One Bellman step of the hazard critic: reward 1 at a violation, which ends the backup like an episode end."""
        ends = np.maximum(batch["violation"], batch["terminal"])
        return self.update_critic({**batch, "reward": batch["violation"], "terminal": ends}, self.hazard)

    def all_nets(self) -> dict[str, nn.Module]:
        """Every network whose parameters are in the weights."""
        return {**self.nets(), "critic": self.critic.net, "hazard": self.hazard.net,
                "classifier": self.classifier.net, **({"encoder": self.encoder} if self.encoder is not None else {})}

    def weights(self) -> dict:
        """A picklable, msgpack-able snapshot: numpy arrays per network, the normaliser, the version."""
        nets = self.all_nets().items()
        return {"version": self.version, "family": self.family,
                **{name: [p.detach().numpy().copy() for p in net.parameters()] for name, net in nets},
                "normalizer": [self.obs_mean, self.obs_std, self.act_mean, self.act_std],
                "train_gap": self.train_gap}

    def load(self, weights: dict) -> None:
        """Takes newer weights (an older or equal version is ignored); another family's raise ValueError."""
        if weights["version"] <= self.version:
            return
        family = weights.get("family", "mlp-ensemble")
        if family != self.family:
            raise ValueError(f"weights of a {family!r} policy cannot load into a {self.family!r} policy")
        pairs = [(f"{name}[{i}]", p, np.asarray(value)) for name, net in self.all_nets().items()
                 if name != "hazard" or name in weights  # a checkpoint from before the hazard critic: untrained
                 for i, (p, value) in enumerate(zip(net.parameters(), weights[name], strict=True))]
        for where, p, value in pairs:  # all checked before any is copied: a wrong set changes nothing
            if value.shape != tuple(p.shape):
                raise ValueError(f"weights {where} have shape {value.shape}, this {self.family} policy's "
                                 f"{tuple(p.shape)}: another network size")
        with torch.no_grad():
            for _, p, value in pairs:
                p.copy_(torch.from_numpy(np.require(value, requirements="W")))  # Ray hands out read-only arrays
        self.set_normalizer(*weights["normalizer"])
        self.train_gap = float(weights["train_gap"])
        self.version = int(weights["version"])

    def trainer_state(self) -> dict:
        """What training needs besides the weights: the optimisers and the critics' targets."""
        return {"optimizer": self.optimizer.state_dict(),
                **{f"{name}_{part}": value for name, critic in (("critic", self.critic), ("hazard", self.hazard))
                   for part, value in (("target", [t.detach().clone() for t in critic.target.parameters()]),
                                       ("optimizer", critic.optimizer.state_dict()))},
                "classifier_optimizer": self.classifier.optimizer.state_dict()}

    def load_trainer_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.classifier.optimizer.load_state_dict(state["classifier_optimizer"])
        for name, critic in (("critic", self.critic), ("hazard", self.hazard)):
            if f"{name}_target" not in state:
                continue  # a checkpoint from before the hazard critic
            critic.optimizer.load_state_dict(state[f"{name}_optimizer"])
            with torch.no_grad():
                for target, value in zip(critic.target.parameters(), state[f"{name}_target"], strict=True):
                    target.copy_(value)
