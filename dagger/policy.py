"""The policy: an ensemble of K MLPs with observation/action normalisation.

    policy = EnsemblePolicy(obs_dim=10, act_dim=2)
    out = policy.act(obs)                    # mean action, ensemble spread, version
    policy.load(other.weights())             # only a newer version is taken
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dagger.core import PolicyOutput
from dagger.critics import DiscrepancyClassifier, GoalCritic
from dagger.nets import EnsembleMLP


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


class EnsemblePolicy:
    """Mean action of the ensemble; spread = mean over action dims of the members' variance.

    It carries the gates' learned signals too: a goal critic (safety of the mean action) and a
    discrepancy classifier; they stay at their initial weights unless the learner trains them.
    """

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0):
        self.config = config or PolicyConfig()
        sizes = [obs_dim] + [self.config.hidden] * self.config.layers + [act_dim]
        self.net = EnsembleMLP(self.config.members, sizes, seed)
        self.critic = GoalCritic(obs_dim, act_dim, self.config.hidden, self.config.gamma, seed=seed)
        self.classifier = DiscrepancyClassifier(obs_dim, self.config.hidden, seed=seed)
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

    def member_actions(self, obs: np.ndarray) -> np.ndarray:
        """[B, obs_dim] -> [K, B, act_dim] in the task's action units."""
        return self.assess(obs)[0]

    def assess(self, obs: np.ndarray, critics: tuple[GoalCritic, ...] = ()) -> tuple[np.ndarray, list[np.ndarray]]:
        """One ensemble pass: the members' actions [K, B, act_dim] in action units, and each critic's twins
        [2, B] at the mean action."""
        x = self.norm_obs(obs)
        with torch.no_grad():
            y = self.net(x)
            twins = [critic.q(x, y.mean(0)).numpy() for critic in critics]
        return y.numpy() * self.act_std + self.act_mean, twins

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:
        obs = np.asarray(obs, np.float32)[None]
        members, (twins,) = self.assess(obs, (self.critic,))
        p_safe = float(self.classifier.p_safe(self.norm_obs(obs))[0])
        return PolicyOutput(members[:, 0].mean(0), float(members[:, 0].var(0).mean()), self.version,
                            safety=float(twins[:, 0].min()), p_safe=p_safe, train_gap=self.train_gap)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalised obs [B, obs_dim] -> the ensemble's mean action [B, act_dim], normalised, no gradient."""
        with torch.no_grad():
            return self.net(obs).mean(0)

    def update_critic(self, batch: dict[str, np.ndarray], critic: GoalCritic | None = None) -> float:
        """One Bellman step of `critic` (default: the goal critic) on transitions; the next action is π's."""
        critic = critic or self.critic
        obs, next_obs = self.norm_obs(batch["obs"]), self.norm_obs(batch["next_obs"])
        return critic.update(obs, self.norm_act(batch["action"]), torch.from_numpy(batch["reward"]), next_obs,
                             self.mean_action(next_obs), torch.from_numpy(batch["terminal"]))

    def loss(self, obs: torch.Tensor, act: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error in normalised units; obs/act are [K, B, dim], one batch per member;
        weight [K, B] (optional) weighs the samples."""
        err = ((self.net(self.norm_obs(obs)) - self.norm_act(act)) ** 2).mean(-1)
        return err.mean() if weight is None else (err * weight).sum() / weight.sum().clamp(min=1.0)

    def weights(self) -> dict:
        """A picklable, msgpack-able snapshot: numpy arrays plus the version."""
        return {
            "version": self.version,
            "params": [p.detach().numpy().copy() for p in self.net.parameters()],
            "critic": [p.detach().numpy().copy() for p in self.critic.net.parameters()],
            "classifier": [p.detach().numpy().copy() for p in self.classifier.net.parameters()],
            "normalizer": [self.obs_mean, self.obs_std, self.act_mean, self.act_std],
            "train_gap": self.train_gap,
        }

    def load(self, weights: dict) -> None:
        if weights["version"] <= self.version:
            return
        with torch.no_grad():
            for net, key in ((self.net, "params"), (self.critic.net, "critic"), (self.classifier.net, "classifier")):
                for p, value in zip(net.parameters(), weights[key], strict=True):
                    p.copy_(torch.from_numpy(np.asarray(value)))
        self.set_normalizer(*weights["normalizer"])
        self.train_gap = float(weights["train_gap"])
        self.version = int(weights["version"])
