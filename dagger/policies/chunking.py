"""chunking: ACT-style action chunking (Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with
Low-Cost Hardware"; LeRobot's configuration_act.py). A transformer encoder reads the observation tokens; a
decoder's k learned queries attend to them and give the next k actions at once; execution averages the
overlapping chunks of the last k steps (temporal ensembling).

    policy = ChunkingPolicy(obs_dim=8, act_dim=2, config=PolicyConfig(type="chunking", chunk=8, members=5))
    out = policy.act(obs)                  # out.action: the temporal ensemble; out.spread: chunks' and heads' variance

Shrunk from the reference (chunk 100, dim_model 512, 8 heads, 4 encoder / 1 decoder layers, feed-forward 3200,
dropout 0.1, KL weight 10) for low-dimensional tasks on two shared CPU cores: chunk = config.chunk, d_model 64,
4 heads, 2 encoder / 1 decoder layers, feed-forward 128, no dropout (so acting needs no train/eval switch).
Simplifications, stated: no CVAE (ACT decodes with its latent z = 0 at inference; we train without the latent
and its KL term); learned position embeddings are added to the tokens once instead of to every layer's queries
and keys. Uncertainty: `members` linear output heads on the shared decoder, each trained on its own random half of
every batch (a bootstrap by masks); the samples behind an action are every head's prediction for this step from every
live chunk, so the spread is both the heads' disagreement and the overlapping chunks' (Sentinel's temporal
consistency).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from dagger.policies.base import BasePolicy, PolicyConfig, Proposal, Stream
from dagger.policies.families import FAMILIES

D_MODEL, HEADS, ENCODER_LAYERS, DECODER_LAYERS, FEEDFORWARD = 64, 4, 2, 1, 128
IMAGE_TOKENS = 4  # encoder tokens the image features are projected to on an image task
#: ACT's temporal-ensembling rate: weight exp(-DECAY * i), i = 0 the oldest chunk's prediction
DECAY = 0.01


def temporal_ensemble(chunks: list[torch.Tensor], decay: float = DECAY) -> tuple[torch.Tensor, torch.Tensor]:
    """ACT's temporal ensembling. `chunks`: oldest first, each [heads, k, act_dim], the newest predicted this
    step, so chunk i of n was predicted n - 1 - i steps ago and its entry n - 1 - i is its prediction for now.
    Returns the action [act_dim] (the exp(-decay * i)-weighted mean, i = 0 the oldest, of each chunk's heads'
    mean) and the samples behind it [n * heads, act_dim] (every head of every chunk, oldest first)."""
    n = len(chunks)
    now = torch.stack([chunk[:, n - 1 - i] for i, chunk in enumerate(chunks)])  # [n, heads, act_dim]
    weights = torch.exp(-decay * torch.arange(n, dtype=now.dtype))
    action = (weights[:, None] * now.mean(1)).sum(0) / weights.sum()
    return action, now.reshape(-1, now.shape[-1])


class ChunkTransformer(nn.Module):
    """Observation tokens -> encoder memory; k learned queries -> decoder -> `heads` linear heads.

    Tokens: the normalised obs as one token and, with `image_dim` > 0, the image features projected to
    IMAGE_TOKENS tokens (ACT gives each backbone feature location a token; a token per keypoint, 33 tokens in
    all, made an image training step at 5 x 64 take 180 ms instead of 67 ms)."""

    def __init__(self, obs_dim: int, act_dim: int, chunk: int, heads: int, image_dim: int, seed: int):
        super().__init__()
        self.obs_dim, self.image_dim = obs_dim, image_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.obs_in = nn.Linear(obs_dim, D_MODEL)
            self.image_in = nn.Linear(image_dim, IMAGE_TOKENS * D_MODEL) if image_dim else None
            self.position = nn.Parameter(torch.randn(1 + (IMAGE_TOKENS if image_dim else 0), D_MODEL) * 0.02)
            self.queries = nn.Parameter(torch.randn(chunk, D_MODEL) * 0.02)
            self.encoder = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, batch_first=True),
                ENCODER_LAYERS, enable_nested_tensor=False)
            self.decoder = nn.TransformerDecoder(
                nn.TransformerDecoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, batch_first=True),
                DECODER_LAYERS)
            bound = 1.0 / math.sqrt(D_MODEL)  # nn.Linear's init, each head its own draw
            self.head_w = nn.Parameter((torch.rand(heads, D_MODEL, act_dim) * 2 - 1) * bound)
            self.head_b = nn.Parameter((torch.rand(heads, 1, 1, act_dim) * 2 - 1) * bound)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Features [N, width] (image features, then obs) -> decoder output [N, k, D_MODEL]."""
        tokens = [self.obs_in(x[:, -self.obs_dim:])[:, None]]
        if self.image_in is not None:
            tokens.append(self.image_in(x[:, :self.image_dim]).reshape(len(x), IMAGE_TOKENS, D_MODEL))
        memory = self.encoder(torch.cat(tokens, 1) + self.position)
        return self.decoder(self.queries.expand(len(x), -1, -1), memory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, width] -> every head's chunk [heads, B, k, act_dim]."""
        return torch.einsum("bkd,hda->hbka", self.trunk(x), self.head_w) + self.head_b


@dataclass(eq=False)
class ChunkStream(Stream):
    """A robot's episode with a chunking policy: the live chunks besides the history."""

    chunk: int = 1  # chunks that overlap: the policy's config.chunk
    chunks: deque[torch.Tensor] = field(init=False)  # [heads, k, act_dim] each, oldest first

    def __post_init__(self) -> None:
        super().__post_init__()
        self.chunks = deque(maxlen=self.chunk)

    def reset(self) -> None:
        super().reset()
        self.chunks.clear()


class ChunkingPolicy(BasePolicy):
    """Predicts `config.chunk` actions per step; executes ACT's temporal ensemble of the last chunk-many chunks."""

    family = "chunking"
    shape_keys, defaults = FAMILIES[family].shape_keys, FAMILIES[family].defaults
    stream_type = ChunkStream

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None):
        config = config or PolicyConfig(type="chunking")
        self.horizon = config.chunk
        super().__init__(obs_dim, act_dim, config, seed, image_shape)
        self.bootstrap = torch.Generator().manual_seed(seed + 7)  # which samples each head trains on
        self.net = ChunkTransformer(obs_dim, act_dim, config.chunk, config.members, self.width - obs_dim, seed)

    def nets(self) -> dict[str, nn.Module]:
        return {"policy": self.net}

    def stream(self, robot: int) -> ChunkStream:
        return ChunkStream(robot, self.history, self.config.chunk)

    def propose_batch(self, seen: torch.Tensor, pixels: torch.Tensor | None,
                      streams: Sequence[Stream]) -> list[Proposal]:
        chunks = self.net(self.features(seen, pixels))  # [heads, K, k, act_dim]
        proposals = []
        for i, stream in enumerate(cast(Sequence[ChunkStream], streams)):
            stream.chunks.append(chunks[:, i])
            proposals.append(Proposal(*temporal_ensemble(list(stream.chunks))))
        return proposals

    def greedy(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.features(obs, image))[:, :, 0].mean(0)

    def bc_loss(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        """ACT's L1 in normalised units over the chunk's live steps (pad masked out). The trunk runs once on the
        batch; each head learns from its own half of it, drawn afresh every step (a bootstrap by masks, as
        Osband et al.'s bootstrapped DQN: running the trunk on a batch per head cost 5x the time)."""
        x = self.features(batch["obs"][0], None if "image" not in batch else batch["image"][0], augment=True)
        heads = self.net.head_w.shape[0]
        mine = torch.rand(heads, x.shape[0], generator=self.bootstrap) < 0.5  # [heads, B]
        live = (~batch["pad"][0]).float() * mine[..., None]  # [heads, B, k]
        if weight is not None:
            live = live * weight[0][None, :, None]
        err = (self.net(x) - batch["action"][0]).abs().mean(-1)
        return (err * live).sum() / live.sum().clamp(min=1.0)
