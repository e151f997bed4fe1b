"""The policy: an ensemble of K MLPs with observation/action normalisation.

    policy = EnsemblePolicy(obs_dim=10, act_dim=2)
    out = policy.act(obs)                    # mean action, ensemble spread, version
    policy.load(other.weights())             # only a newer version is taken
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dagger.core import PolicyOutput


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


class EnsembleMLP(nn.Module):
    """K independent MLPs evaluated as one batched matmul per layer."""

    def __init__(self, members: int, sizes: list[int], seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / np.sqrt(fan_in)
            w = (torch.rand(members, fan_in, fan_out, generator=gen) * 2 - 1) * bound
            b = (torch.rand(members, 1, fan_out, generator=gen) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [K, B, in] (each member its own batch) or [B, in] (shared) -> [K, B, out]."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x


class EnsemblePolicy:
    """Mean action of the ensemble; spread = mean over action dims of the members' variance."""

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0):
        self.config = config or PolicyConfig()
        sizes = [obs_dim] + [self.config.hidden] * self.config.layers + [act_dim]
        self.net = EnsembleMLP(self.config.members, sizes, seed)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_mean = np.zeros(obs_dim, np.float32)
        self.obs_std = np.ones(obs_dim, np.float32)
        self.act_mean = np.zeros(act_dim, np.float32)
        self.act_std = np.ones(act_dim, np.float32)
        self.version = 0

    def set_normalizer(self, obs_mean: np.ndarray, obs_std: np.ndarray,
                       act_mean: np.ndarray, act_std: np.ndarray) -> None:
        self.obs_mean, self.obs_std = obs_mean.astype(np.float32), np.maximum(obs_std, 1e-3).astype(np.float32)
        self.act_mean, self.act_std = act_mean.astype(np.float32), np.maximum(act_std, 1e-3).astype(np.float32)

    def member_actions(self, obs: np.ndarray) -> np.ndarray:
        """[B, obs_dim] -> [K, B, act_dim] in the task's action units."""
        x = torch.from_numpy(((obs - self.obs_mean) / self.obs_std).astype(np.float32))
        with torch.no_grad():
            y = self.net(x).numpy()
        return y * self.act_std + self.act_mean

    def act(self, obs: np.ndarray) -> PolicyOutput:
        members = self.member_actions(np.asarray(obs, np.float32)[None])[:, 0]
        return PolicyOutput(members.mean(0), float(members.var(0).mean()), self.version)

    def loss(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Mean squared error in normalised units; obs/act are [K, B, dim], one batch per member."""
        x = (obs - torch.from_numpy(self.obs_mean)) / torch.from_numpy(self.obs_std)
        y = (act - torch.from_numpy(self.act_mean)) / torch.from_numpy(self.act_std)
        return ((self.net(x) - y) ** 2).mean()

    def weights(self) -> dict:
        """A picklable, msgpack-able snapshot: numpy arrays plus the version."""
        return {
            "version": self.version,
            "params": [p.detach().numpy().copy() for p in self.net.parameters()],
            "normalizer": [self.obs_mean, self.obs_std, self.act_mean, self.act_std],
        }

    def load(self, weights: dict) -> None:
        if weights["version"] <= self.version:
            return
        with torch.no_grad():
            for p, value in zip(self.net.parameters(), weights["params"], strict=True):
                p.copy_(torch.from_numpy(np.asarray(value)))
        self.set_normalizer(*weights["normalizer"])
        self.version = int(weights["version"])
