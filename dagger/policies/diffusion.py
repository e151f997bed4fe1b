"""diffusion: Diffusion Policy (Chi et al. 2023; real-stanford/diffusion_policy, the low-dim DDIM configs) — a
conditional 1-D U-Net denoises a sequence of `chunk` actions, conditioned by FiLM on the last `obs_steps`
observations and the noise level; trained by DDPM ε-prediction over `denoise_steps` levels (squaredcos_cap_v2),
sampled by DDIM (η = 0) in `inference_steps` steps, executed receding-horizon (`execute` actions per draw).

    policy = DiffusionPolicy(obs_dim=4, act_dim=2, config=PolicyConfig(type="diffusion"))
    out = policy.act(obs)       # out.spread: variance across the `samples` sequences drawn together (task units)

Shrunk from the reference: down_dims [256, 512, 1024] (three levels) with a 256-wide step embedding (≈ 66 M
parameters) -> DOWN_DIMS (32, 64) (two levels) with a 32-wide one: 0.28 M. At these sizes a U-Net pass costs its
number of ops, not its FLOPs, and a DDIM draw is `inference_steps` passes, so fewer blocks is what buys time:
[32, 64, 128] costs ≈ 1.7x per pass and 1.9x per training step. Measured on one busy core (as run_loop runs):
act() 4.4 ms per step on average over a queue cycle (execute 4, 8 sequences), the drawing step ≈ 17 ms, the
others 0.25 ms; a training step 20 ms at batch 64, 50 ms at 256. Kernel 5 as the reference. No EMA of the weights
(the learner ships the live weights, and the base trains every net in nets()). Padded actions past a segment's
end are left out of the loss: the reference keeps them, but its segments end only where episodes do; ours end at
every hand-back, where "hold still" would be the wrong lesson.
DDIM's steps start at t = 84 of 100 as the reference's do: starting at t = 99, where ᾱ ≈ 2e-7, the first step's
clipped x0 estimate is a random corner of the box, which showed as spread where the data has none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from dagger.policies.base import BasePolicy, PolicyConfig, Proposal, Stream
from dagger.policies.families import FAMILIES

DOWN_DIMS = (32, 64)  # channels per U-Net level; the sequence halves between levels
KERNEL = 5
EMBED = 32  # width of the noise level's sinusoidal embedding
GROUPS = 8  # GroupNorm groups, as the reference
LR = 1e-3  # AdamW's rate when config.lr is higher: see make_optimizer


def cosine_alpha_bar(steps: int) -> torch.Tensor:
    """ᾱ_t for t = 0..steps−1 of the squaredcos_cap_v2 schedule (Nichol & Dhariwal 2021; diffusers' name): β_t =
    min(1 − f((t+1)/T) / f(t/T), 0.999) with f(u) = cos((u + 0.008) / 1.008 · π/2)²; ᾱ_t = Π_{s≤t} (1 − β_s)."""
    u = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


def ddim_timesteps(steps: int, inference_steps: int) -> list[int]:
    """The noise levels DDIM visits, highest first, evenly spaced from 0 as the reference's (diffusers'
    "leading" spacing): 100 levels in 8 steps -> 84, 72, .. 0."""
    return list(range(0, steps, max(1, steps // inference_steps)))[:inference_steps][::-1]


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha: float, alpha_prev: float,
              low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step (η = 0) from level ᾱ = `alpha` to `alpha_prev` (1 for the clean sample): the
    predicted x0 is clipped to [low, high] as the reference clips it to its normalised box."""
    x0 = ((x - math.sqrt(1 - alpha) * eps) / math.sqrt(alpha)).clamp(low, high)
    return math.sqrt(alpha_prev) * x0 + math.sqrt(1 - alpha_prev) * eps


class Conv(nn.Conv1d):
    """nn.Conv1d whose gradient-free pass on a small batch is one matmul over the unfolded windows: oneDNN's
    convolution costs ~55 µs a call at acting's size (8 sequences of 8 steps), the matmul ~30 µs; from ~32 rows
    on, oneDNN is the faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or len(x) > 16:
            return super().forward(x)
        pad, kernel, stride = self.padding[0], self.kernel_size[0], self.stride[0]
        cols = F.pad(x, (pad, pad)).unfold(2, kernel, stride)  # type: ignore[arg-type]  # [B, C, L, kernel]
        b, c, n, _ = cols.shape
        out = torch.addmm(self.bias, cols.transpose(1, 2).reshape(b * n, c * kernel),  # type: ignore[arg-type]
                          self.weight.view(len(self.weight), -1).t())  # (built with a bias)
        return out.view(b, n, -1).transpose(1, 2)


class ConvBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length kept."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__(Conv(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(GROUPS, cout), nn.Mish())


class FilmBlock(nn.Module):
    """The reference's ConditionalResidualBlock1D: two conv blocks, the first's output scaled and shifted by the
    conditioning (FiLM), plus a residual path."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.first, self.second = ConvBlock(cin, cout, kernel), ConvBlock(cout, cout, kernel)
        self.skip = Conv(cin, cout, 1) if cin != cout else nn.Identity()
        self.width = cout

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        scale, shift = film[..., None].chunk(2, 1)
        return self.second(self.first(x) * scale + shift) + self.skip(x)


class Level(nn.Module):
    """One resolution of the U-Net: two FiLM blocks, then the length halved (down), doubled (up) or kept."""

    def __init__(self, cin: int, cout: int, kernel: int, resample: nn.Module):
        super().__init__()
        self.first, self.second, self.resample = FilmBlock(cin, cout, kernel), FilmBlock(cout, cout, kernel), resample

    def forward(self, x: torch.Tensor, films: Iterator[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (the blocks' output: a down level's skip connection; that output resampled)."""
        h = self.second(self.first(x, next(films)), next(films))
        return h, self.resample(h)


class ConditionalUnet1D(nn.Module):
    """ε(x_t, t, cond): noisy action sequences [B, horizon, act_dim], integer levels [B], conditioning [B, cond_dim]
    -> the predicted noise [B, horizon, act_dim]. The reference's layout: two FiLM blocks per level, halving the
    length between levels, two in the middle, and back up with skip connections (horizon: a multiple of
    2 ** (levels − 1)). The reference's per-block FiLM maps are one Linear here (the same function, one call), and
    its Mish before them acts on the step embedding only: the reference also bends the observation through it,
    harmless for its min-max normalised obs in [-1, 1], but our z-scores reach past Mish's minimum at −1.2, where
    two observations map to one value (the linear test's actions for x < 0 came out nearly constant)."""

    def __init__(self, act_dim: int, cond_dim: int, dims: tuple[int, ...] = DOWN_DIMS, kernel: int = KERNEL):
        super().__init__()
        half = EMBED // 2
        self.freqs = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))  # the sinusoids' rates
        self.embed = nn.Sequential(nn.Linear(EMBED, 4 * EMBED), nn.Mish(), nn.Linear(4 * EMBED, EMBED))
        sizes = [act_dim, *dims]
        self.down = nn.ModuleList(
            Level(cin, cout, kernel, Conv(cout, cout, 3, 2, 1) if i < len(dims) - 1 else nn.Identity())
            for i, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)))
        self.mid = Level(dims[-1], dims[-1], kernel, nn.Identity())
        self.up = nn.ModuleList(Level(2 * cout, cin, kernel, nn.ConvTranspose1d(cin, cin, 4, 2, 1))
                                for cin, cout in reversed(list(zip(dims[:-1], dims[1:], strict=True))))
        self.out = nn.Sequential(ConvBlock(dims[0], dims[0], kernel), Conv(dims[0], act_dim, 1))
        # every block's FiLM scale and shift, in the order forward uses them
        self.widths = [2 * m.width for m in self.modules() if isinstance(m, FilmBlock)]
        self.film = nn.Linear(EMBED + cond_dim, sum(self.widths))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs
        level = F.mish(self.embed(torch.cat([angles.sin(), angles.cos()], -1)))
        films = iter(self.film(torch.cat([level, cond], -1)).split(self.widths, -1))
        h, skips = x.transpose(1, 2), []
        for down in self.down:
            skip, h = down(h, films)
            skips.append(skip)
        h, _ = self.mid(h, films)
        for up in self.up:
            _, h = up(torch.cat([h, skips.pop()], 1), films)
        return self.out(h).transpose(1, 2)


@dataclass(eq=False)
class DiffusionStream(Stream):
    """A robot's episode with a diffusion policy: the sequences being executed and its own draws (which go on across
    episodes: reset does not reseed them)."""

    generator: torch.Generator = field(init=False)  # acting's draws: seeded from robot, as a policy's from its seed
    plan: torch.Tensor | None = None  # [samples, horizon, act_dim]: the sequences being executed
    step: int = 0  # position in the plan of the next action

    def __post_init__(self) -> None:
        super().__post_init__()
        self.generator = torch.Generator().manual_seed(self.robot)

    def reset(self) -> None:
        super().reset()
        self.plan, self.step = None, 0


class DiffusionPolicy(BasePolicy):
    """Executes the first of `samples` jointly drawn action sequences for `execute` steps; spread = the variance
    across the drawn sequences at the executed position (task units, mean over action dims)."""

    family = "diffusion"
    shape_keys, defaults = FAMILIES[family].shape_keys, FAMILIES[family].defaults
    stream_type = DiffusionStream

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None):
        config = config or PolicyConfig(type="diffusion")
        self.horizon, self.history = config.chunk, config.obs_steps
        levels = 2 ** (len(DOWN_DIMS) - 1)
        if config.chunk % levels:
            raise ValueError(f"diffusion: chunk must be a multiple of {levels} (the U-Net halves it), "
                             f"not {config.chunk}")
        super().__init__(obs_dim, act_dim, config, seed, image_shape)
        self.execute = max(1, min(config.execute, config.chunk))
        cond_dim = self.width + (self.history - 1) * obs_dim  # the image's features once, the state at every step
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = ConditionalUnet1D(act_dim, cond_dim, DOWN_DIMS, KERNEL)
        self.alpha_bar = cosine_alpha_bar(config.denoise_steps)
        self.timesteps = ddim_timesteps(config.denoise_steps, config.inference_steps)
        self.noise = torch.Generator().manual_seed(seed + 1)  # training's noise and levels

    def nets(self) -> dict[str, nn.Module]:
        return {"policy": self.net}

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW with the reference's betas and decay, the rate capped at LR = 1e-3: a rate of 3e-3 learns as fast
        but, with no EMA to smooth the weights, leaves more samples between two modes (up to 5 of 32 after 1000
        steps, none at 1e-3); the reference's 1e-4 needs thousands of epochs."""
        return torch.optim.AdamW(self.trainable(), lr=min(self.config.lr, LR), betas=(0.95, 0.999),
                                 weight_decay=1e-6, fused=True)

    def condition(self, obs: torch.Tensor, image: torch.Tensor | None, augment: bool = False) -> torch.Tensor:
        """Normalised obs [..., (history,) obs_dim] (+ the newest image) -> the denoiser's conditioning."""
        flat = obs.flatten(-2) if self.history > 1 else obs
        return self.features(flat, image, augment=augment)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The task's action box [-1, 1] in normalised units: where sampled actions are clipped."""
        mean, std = torch.from_numpy(self.act_mean), torch.from_numpy(self.act_std)
        return (-1 - mean) / std, (1 - mean) / std

    def sample(self, cond: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
        """One action sequence per row of cond [B, C] by DDIM from Gaussian noise -> [B, horizon, act_dim]
        (no gradient). The noise comes from `generator`, or with n generators, the i-th B/n rows' from the i-th."""
        gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
        if len(cond) % len(gens):
            raise ValueError(f"sample: {len(cond)} rows cannot be split among {len(gens)} generators")
        x = torch.cat([torch.randn(len(cond) // len(gens), self.horizon, self.act_dim, generator=g) for g in gens])
        low, high = self.bounds()
        with torch.no_grad():
            for i, t in enumerate(self.timesteps):
                eps = self.net(x, torch.full((len(cond),), t), cond)
                prev = self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1
                x = ddim_step(x, eps, float(self.alpha_bar[t]), float(self.alpha_bar[prev]) if prev >= 0 else 1.0,
                              low, high)
        return x

    @property
    def plan(self) -> torch.Tensor | None:
        """The own stream's sequences being executed [samples, horizon, act_dim] (None before the first act)."""
        return cast(DiffusionStream, self.own).plan

    def propose_batch(self, seen: torch.Tensor, pixels: torch.Tensor | None,
                      streams: Sequence[Stream]) -> list[Proposal]:
        """Draws afresh, in one DDIM pass, for the robots whose plan is used up (or new); the others step on."""
        mine = cast(Sequence[DiffusionStream], streams)
        due = [i for i, s in enumerate(mine) if s.plan is None or s.step >= self.execute]
        if due:
            cond = self.condition(seen[due], None if pixels is None else pixels[due])  # [D, C]
            drawn = self.sample(cond.repeat_interleave(self.config.samples, 0), [mine[i].generator for i in due])
            for i, plan in zip(due, drawn.unflatten(0, (len(due), self.config.samples)), strict=True):
                mine[i].plan, mine[i].step = plan, 0
        proposals = []
        for s in mine:
            assert s.plan is not None
            here = s.plan[:, s.step]  # sample 0 is executed as drawn: a mean over the samples would average the modes
            s.step += 1
            proposals.append(Proposal(here[0], here))
        return proposals

    def greedy(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """One sequence per row, its first action; the noise comes from a generator seeded afresh from the
        policy's seed, so the same inputs give the same actions and acting's draws are untouched."""
        generator = torch.Generator().manual_seed(self.seed)
        return self.sample(self.condition(obs, image), generator)[:, 0]

    def bc_loss(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        """DDPM ε-prediction: noise each action sequence to a random level, regress the noise (mean squared
        error in normalised units). Positions past the sequence's segment are left out (`pad`): a segment ends at
        every hand-back, not only at an episode's end where the reference's edge padding means "stay"."""
        cond = self.condition(batch["obs"], batch.get("image"), augment=True)
        x0 = batch["action"]
        cond, x0 = cond.reshape(-1, cond.shape[-1]), x0.reshape(-1, *x0.shape[-2:])
        t = torch.randint(0, len(self.alpha_bar), (len(x0),), generator=self.noise)
        eps = torch.randn(x0.shape, generator=self.noise)
        alpha = self.alpha_bar[t][:, None, None]
        err = ((self.net(alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps, t, cond) - eps) ** 2).mean(-1)
        live = torch.ones_like(err) if "pad" not in batch else (~batch["pad"]).reshape(err.shape).float()
        if weight is not None:
            live = live * weight.reshape(-1, 1)
        return (err * live).sum() / live.sum().clamp(min=1.0)
