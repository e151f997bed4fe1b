"""implicit: Implicit BC (Florence et al. 2021, "Implicit Behavioral Cloning"; diffusion_policy's
train_ibc_dfo_lowdim_workspace.yaml) with IIFL's uncertainty (Datta et al. 2023, "IIFL: Implicit Interactive Fleet
Learning from Heterogeneous Human Supervisors"; BerkeleyAutomation/IIFL, iflb/agents/impl/ibc/ibc.py).

    policy = ImplicitPolicy(obs_dim=8, act_dim=2, config=PolicyConfig(type="implicit", negatives=256, samples=8))
    out = policy.act(obs)        # out.action: model 0's DFO optimum; out.spread: the models' Jeffreys divergence

An energy MLP E(features(obs), action) -> scalar defines π(a|s) ∝ exp(-E(s, a)) on the action box. Training is
InfoNCE: the label's logit -E among `negatives` counter-examples drawn uniformly in the box. Acting is IBC's
derivative-free optimisation (DFO): candidates uniform in the box, then rounds of resampling by softmax(-E) plus
Gaussian noise that halves each round, and the lowest-energy candidate wins.

IIFL: exactly two energy models (one EnsembleMLP with 2 members; config.members is not used), model j trained on
the learner's batch j (online bootstrap). The robot executes model 0's optimum, as IIFL's get_actions does
(averaging the two optima would land between the modes of a multimodal expert). Uncertainty is the Jeffreys
divergence between the two models (in nats, not task units: gate thresholds need their own calibration),

    J = E_{a~π0}[E1(s,a) − E0(s,a)] + E_{a~π1}[E0(s,a) − E1(s,a)]      (the partition functions cancel),

estimated from each model's final DFO population weighted by softmax(-E_j): the expectation of resampling that
population, computed instead of drawn. IIFL draws Langevin samples; resampling `samples` draws would estimate the
same J, with 2-3x its noise on a trained model (std 0.22 vs 0.09 on the data, 0.59 vs 0.19 off it) and negative
values a quarter of the time on the data. The estimate can still dip below 0 (the two populations differ), so it
is clipped at 0 from below. Proposal.samples are config.samples draws per model from that resampling (model 0's first).

Shrunk from the references for two shared CPU cores: the energy net is config.layers x config.hidden
(diffusion_policy: 4 x 1024 with dropout 0.1; no dropout here, so acting needs no train/eval switch); negatives =
config.negatives (diffusion_policy 1024, IIFL's DFO 256); acting uses CANDIDATES = 256 candidates and ITERS = 3
rounds (diffusion_policy: 1024 x 5 rounds; IBC's and IIFL's DFO: 16384 x 3) with IBC's noise, 0.33 of the box's
half-width halving each round: about 1.5 ms per act() on one thread (1024 candidates: 3.4 ms). The action box is
the tasks' [-1, 1] in task units, (±1 − act_mean) / act_std normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from dagger.nets import EnsembleMLP
from dagger.policies.base import BasePolicy, PolicyConfig, Proposal, Stream
from dagger.policies.families import FAMILIES

#: DFO candidates and resampling rounds per decision (acting and greedy)
CANDIDATES, ITERS = 256, 3
#: IBC's DFO noise (as a fraction of the box's half-width) and its shrink per round
NOISE, SHRINK = 0.33, 0.5
#: the tasks' action box in task units
LOW, HIGH = -1.0, 1.0


@dataclass(eq=False)
class ImplicitStream(Stream):
    """A robot's episode with an implicit policy: its own DFO draws (which go on across episodes)."""

    rng: torch.Generator = field(init=False)  # seeded from robot + 1, as a policy's from its seed + 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rng = torch.Generator().manual_seed(self.robot + 1)


Generators = torch.Generator | Sequence[torch.Generator]
"""one generator for every row of a batch, or row b's own at b"""


def joined(parts: list[torch.Tensor]) -> torch.Tensor:
    """The parts concatenated along the batch rows (dim 1); one part as it is."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def by_row(gens: Generators, rows: int) -> list[tuple[torch.Generator, slice]]:
    """(generator, the batch rows it draws for): all `rows` from one, or row b from gens[b]."""
    if isinstance(gens, torch.Generator):
        return [(gens, slice(0, rows))]
    if len(gens) != rows:
        raise ValueError(f"{len(gens)} generators for {rows} rows")
    return [(g, slice(b, b + 1)) for b, g in enumerate(gens)]


class ImplicitPolicy(BasePolicy):
    """Two energy models; the action is model 0's DFO optimum, the spread their Jeffreys divergence."""

    family = "implicit"
    members = 2  # IIFL's exactly two models
    shape_keys, defaults = FAMILIES[family].shape_keys, FAMILIES[family].defaults
    stream_type = ImplicitStream

    def __init__(self, obs_dim: int, act_dim: int, config: PolicyConfig | None = None, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None):
        config = config or PolicyConfig(type="implicit")
        super().__init__(obs_dim, act_dim, config, seed, image_shape)
        self.net = EnsembleMLP(self.members, [self.width + act_dim] + [config.hidden] * config.layers + [1], seed)

    def nets(self) -> dict[str, nn.Module]:
        return {"energy": self.net}

    @property
    def rng(self) -> torch.Generator:
        """The training negatives' and act()'s draws: the own stream's generator, seeded from seed + 1."""
        return cast(ImplicitStream, self.own).rng

    @rng.setter
    def rng(self, generator: torch.Generator) -> None:
        cast(ImplicitStream, self.own).rng = generator

    def box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The action box [LOW, HIGH] in normalised units: low, high [act_dim]."""
        return self.norm_act(torch.full((self.act_dim,), LOW)), self.norm_act(torch.full((self.act_dim,), HIGH))

    def uniform(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Actions uniform in the normalised box: [*shape, act_dim]."""
        low, high = self.box()
        return low + (high - low) * torch.rand(*shape, self.act_dim, generator=gen)

    def energy(self, feats: torch.Tensor, actions: torch.Tensor, members: tuple[int, ...] = (0, 1)) -> torch.Tensor:
        """Energies [K, B, N] of the models `members` (K of them) for features [K, B, width] and actions
        [K, B, N, act_dim]. The first layer is split into its feature and action parts so that the features'
        product is computed once per row, not once per candidate; one addmm per member is about twice as fast
        on CPU as EnsembleMLP's baddbmm at training sizes (131k rows)."""
        (w_in, b_in), *rest = zip(self.net.weights, self.net.biases, strict=True)
        out = []
        for i, k in enumerate(members):
            row = feats[i] @ w_in[k, :self.width] + b_in[k]  # [B, hidden]
            x = (actions[i] @ w_in[k, self.width:]).add_(row[:, None]).flatten(0, 1)  # [B * N, hidden]
            for w, b in rest:
                x = torch.addmm(b[k], x.relu_(), w[k])
            out.append(x.reshape(actions.shape[1:3]))
        return torch.stack(out)

    def dfo(self, feats: torch.Tensor, members: tuple[int, ...], gens: Generators) -> tuple[torch.Tensor, torch.Tensor]:
        """IBC's derivative-free optimisation for each model in `members` and each row of feats [K, B, width]:
        the final population [K, B, CANDIDATES, act_dim] and its energies [K, B, CANDIDATES]. Row b's draws come
        from `gens` (one generator for all rows, or gens[b]) in the order one row alone would draw them."""
        k, b = feats.shape[:2]
        low, high = self.box()
        scale = NOISE * (high - low) / 2
        parts = by_row(gens, b)
        pop = joined([self.uniform((k, rows.stop - rows.start, CANDIDATES), g) for g, rows in parts])
        for _ in range(ITERS):
            prob = torch.softmax(-self.energy(feats, pop, members), -1)  # [K, B, CANDIDATES]
            pick = joined([torch.multinomial(prob[:, rows].reshape(-1, CANDIDATES), CANDIDATES, replacement=True,
                                             generator=g).reshape(k, -1, CANDIDATES) for g, rows in parts])
            pop = pop.gather(2, pick[..., None].expand(-1, -1, -1, self.act_dim))
            noise = joined([torch.randn(pop[:, rows].shape, generator=g) for g, rows in parts])
            pop = torch.minimum(torch.maximum(pop + scale * noise, low), high)
            scale = scale * SHRINK
        return pop, self.energy(feats, pop, members)

    def divergence(self, feats: torch.Tensor, pop: torch.Tensor) -> torch.Tensor:
        """IIFL's Jeffreys divergence per row, not clipped, from each model's samples pop [2, B, N, act_dim]
        (model j's weighted by softmax(-E_j) over its N) for features [2, B, width]: returns [B]
        Σ_j E_{a~π_j}[E_{1-j}(s, a) − E_j(s, a)]."""
        n = pop.shape[2]
        energies = self.energy(feats, torch.cat([pop, pop.flip(0)], 2))  # model j on [its own, the other's]
        own, other = energies[..., :n], energies[..., n:].flip(0)  # other[j]: model 1-j on model j's samples
        return (torch.softmax(-own, -1) * (other - own)).sum(-1).sum(0)

    def propose_batch(self, seen: torch.Tensor, pixels: torch.Tensor | None,
                      streams: Sequence[Stream]) -> list[Proposal]:
        gens = [s.rng for s in cast(Sequence[ImplicitStream], streams)]
        feats = self.features(seen, pixels)[None].expand(2, -1, -1)  # both models see each state: [2, K, width]
        pop, energies = self.dfo(feats, (0, 1), gens)  # [2, K, N, act_dim], [2, K, N]
        spreads = self.divergence(feats, pop).clamp(min=0.0)
        proposals = []
        for i, gen in enumerate(gens):
            pick = torch.multinomial(torch.softmax(-energies[:, i], -1), self.config.samples, replacement=True,
                                     generator=gen)
            samples = torch.cat([pop[j, i, pick[j]] for j in range(2)])
            proposals.append(Proposal(pop[0, i, energies[0, i].argmin()], samples, float(spreads[i])))
        return proposals

    def greedy(self, obs: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """Model 0's DFO optimum per row; a generator seeded afresh from self.seed makes it a function of obs."""
        pop, energies = self.dfo(self.features(obs, image)[None], (0,), torch.Generator().manual_seed(self.seed))
        return pop[0].gather(1, energies[0].argmin(-1)[:, None, None].expand(-1, 1, self.act_dim))[:, 0]

    def bc_loss(self, batch: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        """InfoNCE: cross-entropy of the label among [label, negatives] under logits -E; model m on batch[m]."""
        feats = self.features(batch["obs"], batch.get("image"), augment=True)  # [2, B, width]
        action = batch["action"]
        candidates = torch.cat([action[:, :, None], self.uniform((*action.shape[:2], self.config.negatives),
                                                                 self.rng)], 2)
        energies = self.energy(feats, candidates)  # [2, B, 1 + negatives]
        err = torch.logsumexp(-energies, -1) + energies[..., 0]
        return err.mean() if weight is None else (err * weight).sum() / weight.sum().clamp(min=1.0)
