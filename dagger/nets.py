"""EnsembleMLP: K independent MLPs as one batched network (the policy's ensemble, the critics' twins)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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
