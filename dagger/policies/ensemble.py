"""mlp-ensemble: K MLPs trained by mean squared error, each on its own batch (online bootstrap); the action is
their mean and the uncertainty their variance (EnsembleDAgger's and ThriftyDAgger's novelty)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dagger.nets import EnsembleMLP
from dagger.policies.base import BasePolicy, PolicyConfig, Proposal, Stream
from dagger.policies.families import FAMILIES


class EnsemblePolicy(BasePolicy):
    """Mean action of the ensemble; spread = mean over action dims of the members' variance (task units)."""

    family = "mlp-ensemble"
    shape_keys = FAMILIES[family].shape_keys

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None):
        config = config or PolicyConfig()
        self.members = config.members
        super().__init__(obs_dim, act_dim, config, seed, image_shape)
        self.net = EnsembleMLP(config.members, [self.width] + [config.hidden] * config.layers + [act_dim], seed)

    def nets(self) -> dict[str, nn.Module]:
        return {"params": self.net}  # "params": the name checkpoints have always used

    def member_actions(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised obs [B, obs_dim] -> the members' normalised actions [K, B, act_dim]."""
        return self.net(self.features(obs, image))

    def propose_batch(self, seen: torch.Tensor, pixels: torch.Tensor | None,
                      streams: Sequence[Stream]) -> list[Proposal]:
        members = self.member_actions(seen, pixels)  # [members, K, act_dim]
        return [Proposal(members[:, i].mean(0), members[:, i]) for i in range(len(streams))]

    def greedy(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return self.member_actions(obs, image).mean(0)

    def bc_loss(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        """Mean squared error in normalised units, member k on batch[k] (images randomly shifted)."""
        x = self.features(batch["obs"], batch.get("image"), augment=True)
        err = ((self.net(x) - batch["action"]) ** 2).mean(-1)
        return err.mean() if weight is None else (err * weight).sum() / weight.sum().clamp(min=1.0)

    def bc_step(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        """bc_loss's step with closed-form gradients (EnsembleMLP.mse_grads) and fused Adam; by autograd through
        the image encoder on an image task."""
        if self.encoder is not None:
            return super().bc_step(batch, weight)
        loss, grads = self.net.mse_grads(batch["obs"], batch["action"], weight)
        self.apply_grads(grads)
        return loss
