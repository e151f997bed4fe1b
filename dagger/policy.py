"""The policy: an ensemble of K MLPs with observation/action normalisation; on an image task, a CNN encoder
shared by the members turns the camera image into features beside the (proprioceptive) observation.

    policy = EnsemblePolicy(obs_dim=10, act_dim=2)            # image_shape=(64, 64, 3) for an image task
    out = policy.act(obs)                    # mean action, ensemble spread, version (act(obs, image): images)
    policy.load(other.weights())             # only a newer version is taken
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dagger.core import PolicyOutput
from dagger.critics import DiscrepancyClassifier, GoalCritic
from dagger.nets import EnsembleMLP, ImageEncoder, random_shift


@dataclass
class PolicyConfig:
    members: int = 5
    """ensemble size K (ThriftyDAgger uses 5)"""
    hidden: int = 64
    """width of each hidden layer"""
    layers: int = 2
    """number of hidden layers"""
    lr: float = 3e-3
    """Adam learning rate"""
    gamma: float = 0.9999
    """goal critic's discount (ThriftyDAgger's value): Q estimates the chance of reaching success"""
    risk_gamma: float = 0.9
    """hazard critic's discount (Fleet-DAgger's): Q estimates the chance of a constraint violation soon"""


class EnsemblePolicy:
    """Mean action of the ensemble; spread = mean over action dims of the members' variance.

    It carries the gates' and allocators' learned signals too: a goal critic (safety of the mean action), a
    hazard critic (risk of a constraint violation) and a discrepancy classifier; they stay at their initial
    weights unless the learner trains them.
    """

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None):
        self.config = config or PolicyConfig()
        self.encoder = ImageEncoder(seed=seed) if image_shape is not None else None
        self.augment = torch.Generator().manual_seed(seed)  # the random shifts of training images
        width = obs_dim + (self.encoder.out_dim if self.encoder is not None else 0)  # what the members see
        sizes = [width] + [self.config.hidden] * self.config.layers + [act_dim]
        self.net = EnsembleMLP(self.config.members, sizes, seed)
        self.critic = GoalCritic(width, act_dim, self.config.hidden, self.config.gamma, seed=seed)
        self.hazard = GoalCritic(width, act_dim, self.config.hidden, self.config.risk_gamma, seed=seed + 2)
        self.classifier = DiscrepancyClassifier(width, self.config.hidden, seed=seed)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_mean = np.zeros(obs_dim, np.float32)
        self.obs_std = np.ones(obs_dim, np.float32)
        self.act_mean = np.zeros(act_dim, np.float32)
        self.act_std = np.ones(act_dim, np.float32)
        self.train_gap = 0.0  # mean ‖π(o) − a‖² over recent training labels (ThriftyDAgger's hand-back bar)
        self.version = 0

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

    def trainable(self) -> list[torch.nn.Parameter]:
        """What behavior cloning trains: the members, and the image encoder they share."""
        return [*self.net.parameters(), *(self.encoder.parameters() if self.encoder is not None else ())]

    def features(self, obs: torch.Tensor, image: np.ndarray | torch.Tensor | None = None,
                 augment: bool = False) -> torch.Tensor:
        """What the members see: the normalised obs [..., obs_dim], with the image's encoding [..., F] before it
        on an image task (image uint8 [..., H, W, 3]; `augment`: randomly shifted, for training)."""
        if self.encoder is None:
            return obs
        if image is None:
            raise ValueError("this policy sees camera images: act(obs, image) needs the task's image")
        pixels = torch.as_tensor(image)
        lead = pixels.shape[:-3]
        flat = pixels.reshape(-1, *pixels.shape[-3:])
        z = self.encoder(random_shift(flat, generator=self.augment) if augment else flat)
        return torch.cat([z.reshape(*lead, -1), obs], -1)

    def member_actions(self, obs: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """[B, obs_dim] (and images [B, H, W, 3]) -> [K, B, act_dim] in the task's action units."""
        return self.assess(obs, image=image)[0]

    def assess(self, obs: np.ndarray, critics: tuple[GoalCritic, ...] = (),
               image: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """One ensemble pass: the members' actions [K, B, act_dim] in action units, and each critic's twins
        [2, B] at the mean action."""
        with torch.no_grad():
            x = self.features(self.norm_obs(obs), image)
        return self._assess(x, critics)

    def _assess(self, x: torch.Tensor, critics: tuple[GoalCritic, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        with torch.no_grad():
            y = self.net(x)
            twins = [critic.q(x, y.mean(0)).numpy() for critic in critics]
        return y.numpy() * self.act_std + self.act_mean, twins

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:
        with torch.no_grad():
            x = self.features(self.norm_obs(np.asarray(obs, np.float32)[None]),
                              None if image is None else np.asarray(image)[None])
        members, (twins, hazard) = self._assess(x, (self.critic, self.hazard))
        p_safe = float(self.classifier.p_safe(x)[0])
        return PolicyOutput(members[:, 0].mean(0), float(members[:, 0].var(0).mean()), self.version,
                            safety=float(twins[:, 0].min()), p_safe=p_safe, train_gap=self.train_gap,
                            risk=float(hazard[:, 0].max()))

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """What the members see [B, width] (see features) -> their mean action [B, act_dim], normalised, no
        gradient."""
        with torch.no_grad():
            return self.net(obs).mean(0)

    def update_critic(self, batch: dict[str, np.ndarray], critic: GoalCritic | None = None) -> float:
        """One Bellman step of `critic` (default: the goal critic) on transitions; the next action is π's."""
        critic = critic or self.critic
        obs, next_obs = self.norm_obs(batch["obs"]), self.norm_obs(batch["next_obs"])
        return critic.update(obs, self.norm_act(batch["action"]), torch.from_numpy(batch["reward"]), next_obs,
                             self.mean_action(next_obs), torch.from_numpy(batch["terminal"]))

    def update_hazard(self, batch: dict[str, np.ndarray]) -> float:
        """One Bellman step of the hazard critic: reward 1 at a violation, which ends the backup like an episode end."""
        ends = np.maximum(batch["violation"], batch["terminal"])
        return self.update_critic({**batch, "reward": batch["violation"], "terminal": ends}, self.hazard)

    def loss(self, obs: torch.Tensor, act: torch.Tensor, weight: torch.Tensor | None = None,
             image: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error in normalised units; obs/act are [K, B, dim], one batch per member (image
        [K, B, H, W, 3], randomly shifted here); weight [K, B] (optional) weighs the samples."""
        err = ((self.net(self.features(self.norm_obs(obs), image, augment=True)) - self.norm_act(act)) ** 2).mean(-1)
        return err.mean() if weight is None else (err * weight).sum() / weight.sum().clamp(min=1.0)

    def weights(self) -> dict:
        """A picklable, msgpack-able snapshot: numpy arrays plus the version."""
        return {
            "version": self.version,
            "params": [p.detach().numpy().copy() for p in self.net.parameters()],
            "critic": [p.detach().numpy().copy() for p in self.critic.net.parameters()],
            "classifier": [p.detach().numpy().copy() for p in self.classifier.net.parameters()],
            "hazard": [p.detach().numpy().copy() for p in self.hazard.net.parameters()],
            "encoder": [p.detach().numpy().copy() for p in self.encoder.parameters()] if self.encoder else [],
            "normalizer": [self.obs_mean, self.obs_std, self.act_mean, self.act_std],
            "train_gap": self.train_gap,
        }

    def load(self, weights: dict) -> None:
        if weights["version"] <= self.version:
            return
        with torch.no_grad():
            nets = [(self.net, "params"), (self.critic.net, "critic"), (self.classifier.net, "classifier"),
                    (self.hazard.net, "hazard")]
            for net, key in nets + ([(self.encoder, "encoder")] if self.encoder is not None else []):
                if key == "hazard" and key not in weights:
                    continue  # a checkpoint from before the hazard critic: it stays untrained
                for p, value in zip(net.parameters(), weights[key], strict=True):
                    p.copy_(torch.from_numpy(np.asarray(value)))
        self.set_normalizer(*weights["normalizer"])
        self.train_gap = float(weights["train_gap"])
        self.version = int(weights["version"])
