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
        return self.layer_outputs(x)[-1]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [K, B, in] and each layer's output after it (relu'd, but the last)."""
        outputs, last = [x], len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            y = torch.baddbmm(b, outputs[-1], w)
            outputs.append(torch.relu(y) if i < last else y)
        return outputs

    def mse_grads(self, x: torch.Tensor, target: torch.Tensor,
                  weight: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The squared error averaged over output dims, then over [K, B] (or weighted by `weight` [K, B], over a
        total of at least 1), and its gradients for parameters(), in closed form: a bmm per product, no autograd
        graph. x: [K, B, in], target: [K, B, out]."""
        with torch.no_grad():
            seen = self.layer_outputs(x)  # seen[i]: layer i's input
            err = seen.pop() - target
            squared = (err * err).mean(-1)
            if weight is None:
                loss, grad = squared.mean(), err.mul_(2.0 / err.numel())
            else:
                total = weight.sum().clamp(min=1.0)
                loss = (squared * weight).sum() / total
                grad = err.mul_(weight[..., None] * (2.0 / err.shape[-1] / total))
            grad_w, grad_b = [], []
            for i in reversed(range(len(self.weights))):
                grad_w.append(torch.bmm(seen[i].transpose(1, 2), grad))
                grad_b.append(grad.sum(1, keepdim=True))
                if i:  # back through relu with relu's own backward kernel (a bool mask costs ~10x as much on CPU)
                    grad = torch.ops.aten.threshold_backward(torch.bmm(grad, self.weights[i].transpose(1, 2)),
                                                             seen[i], 0)
        return loss, grad_w[::-1] + grad_b[::-1]


class ImageEncoder(nn.Module):
    """A small CNN ending in a spatial soft-argmax (Levine et al. 2016; robomimic and Diffusion Policy pool the
    same way): where in the image each of `keypoints` feature maps is most active.

        enc = ImageEncoder(keypoints=32); z = enc(images)    # uint8 [B, H, W, 3] -> [B, 2 * keypoints]
    """

    def __init__(self, keypoints: int = 32, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2),
                                      nn.ReLU(), nn.Conv2d(32, keypoints, 3))
        self.out_dim = 2 * keypoints

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.conv(to_chw(images))
        b, k, h, w = maps.shape
        attention = torch.softmax(maps.reshape(b, k, h * w), -1).reshape(b, k, h, w)
        ys, xs = torch.linspace(-1, 1, h), torch.linspace(-1, 1, w)
        return torch.cat([(attention.sum(2) * xs).sum(-1), (attention.sum(3) * ys).sum(-1)], -1)


def to_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-0.5, 0.5] (a float input is taken as already converted)."""
    if images.dtype != torch.uint8:
        return images
    return images.permute(0, 3, 1, 2).float() / 255.0 - 0.5


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ's augmentation (Kostrikov et al. 2020; Diffusion Policy crops likewise): pad each image by `pad` pixels
    (edges repeated) and cut it back out at a random offset. uint8 [B, H, W, 3] -> float [B, 3, H, W]."""
    x = to_chw(images)
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(b, 3, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(b, 3, h, w)
    return cropped.gather(3, cols)
