"""The learned signals some gates need besides the ensemble's spread.

- GoalCritic (ThriftyDAgger): twin Q-nets with sigmoid outputs, trained by Bellman backup with
  reward 1 at success, so Q(s, a) estimates the chance of reaching the goal; safety = min(q1, q2).
- DiscrepancyClassifier (SafeDAgger / LazyDAgger): predicts whether the policy's action in a state
  is within tau_sup of the human's.

Both take normalised inputs (the policy's normaliser) as torch tensors.

    critic = GoalCritic(obs_dim=10, act_dim=2)
    critic.update(obs, act, reward, next_obs, next_act, terminal)   # one Bellman step
    safety = critic.safety(obs, act)                                # [B], in (0, 1)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dagger.nets import EnsembleMLP


class GoalCritic:
    """Twin sigmoid Q-nets with a Polyak-averaged target (ThriftyDAgger's `q1`, `q2`)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64, gamma: float = 0.9999,
                 polyak: float = 0.995, lr: float = 1e-3, seed: int = 0):
        self.net = EnsembleMLP(2, [obs_dim + act_dim, hidden, hidden, 1], seed=seed + 1)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.gamma, self.polyak = gamma, polyak
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)

    def q(self, obs: torch.Tensor, act: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """[B, obs], [B, act] -> [2, B] probabilities."""
        return torch.sigmoid((net or self.net)(torch.cat([obs, act], -1))[..., 0])

    def safety(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.q(obs, act).min(0).values

    def update(self, obs: torch.Tensor, act: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
               next_act: torch.Tensor, terminal: torch.Tensor) -> float:
        """One gradient step on both twins towards r + γ(1 − d)·min(q1', q2')(s', π(s'))."""
        with torch.no_grad():
            backup = reward + self.gamma * (1 - terminal) * self.q(next_obs, next_act, self.target).min(0).values
        loss = ((self.q(obs, act) - backup) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for p, p_targ in zip(self.net.parameters(), self.target.parameters(), strict=True):
                p_targ.mul_(self.polyak).add_((1 - self.polyak) * p)
        return loss.item()


class DiscrepancyClassifier:
    """P(the policy's action is close to the human's) from the state alone."""

    def __init__(self, obs_dim: int, hidden: int = 64, lr: float = 1e-3, seed: int = 0):
        self.net = EnsembleMLP(1, [obs_dim, hidden, hidden, 1], seed=seed + 2)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)

    def p_safe(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(self.net(obs)[0, :, 0])

    def update(self, obs: torch.Tensor, safe: torch.Tensor) -> float:
        """One step of binary cross-entropy against safe (1 = within tau_sup)."""
        loss = nn.functional.binary_cross_entropy_with_logits(self.net(obs)[0, :, 0], safe)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()
