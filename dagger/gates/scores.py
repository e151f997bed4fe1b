"""Per-step failure scores read from a policy's answer: higher says the policy is more likely to be failing here.

    scorer = Scorer("entropy"); scorer(out)          # one robot's score this step
    scorer.reset()                                   # a new episode: "consistency" forgets the last step's samples

- spread: the family's own uncertainty (the ensemble's variance, IIFL's Jeffreys divergence, ...), as it is.
- entropy: FIPER's action-chunk entropy, here of the samples behind this step's action (`PolicyOutput.samples`
  [S, act_dim]) as a Gaussian with their per-dimension variance: Σ_d ½ log(2πe (var_d + ENTROPY_FLOOR)).
- consistency: Sentinel's temporal consistency, the maximum mean discrepancy (MMD², RBF kernel of width
  MMD_BANDWIDTH, biased estimate) between this step's samples and the previous step's: a policy that keeps changing
  its mind from one step to the next scores high. The first step of an episode scores 0.

Scores are in their own units; a conformal calibration (dagger.gates.conformal) turns any of them into a threshold
with a stated false-alarm rate.
"""

from __future__ import annotations

import math

import numpy as np

from dagger.core import PolicyOutput

SCORES = ("spread", "entropy", "consistency")
ENTROPY_FLOOR = 1e-6
"""added to each dimension's variance: samples that agree exactly score a finite entropy"""
MMD_BANDWIDTH = 0.1
"""the RBF kernel's width in action units (task actions lie in [-1, 1]; one step's change is a few hundredths)"""


def chunk_entropy(samples: np.ndarray) -> float:
    """Differential entropy (nats) of a Gaussian with the samples' per-dimension variance (samples [S, act_dim])."""
    var = np.asarray(samples, float).var(0)
    return float(np.sum(0.5 * np.log(2 * math.pi * math.e * (var + ENTROPY_FLOOR))))


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float = MMD_BANDWIDTH) -> float:
    """Biased MMD² between sample sets x [n, d] and y [m, d] with k(a, b) = exp(-‖a − b‖² / (2 bandwidth²))."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def kernel(a: np.ndarray, b: np.ndarray) -> float:
        gaps = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return float(np.exp(-gaps / (2 * bandwidth**2)).mean())

    return max(0.0, kernel(x, x) + kernel(y, y) - 2 * kernel(x, y))


class Scorer:
    """One robot's score of one kind, step after step (consistency remembers the previous step's samples)."""

    def __init__(self, name: str):
        if name not in SCORES:
            raise ValueError(f"unknown score {name!r} (gate.score); choose one of {list(SCORES)}")
        self.name = name
        self.previous: np.ndarray | None = None

    def reset(self) -> None:
        self.previous = None

    def __call__(self, out: PolicyOutput) -> float:
        if self.name == "spread":
            return float(out.spread)
        samples = self.samples(out)
        if self.name == "entropy":
            return chunk_entropy(samples)
        previous, self.previous = self.previous, samples
        return 0.0 if previous is None else mmd2(previous, samples)

    def samples(self, out: PolicyOutput) -> np.ndarray:
        if out.samples is None:
            raise ValueError(f"score {self.name!r} reads PolicyOutput.samples, which policy version {out.version} "
                             "did not give (a served policy that sends none?)")
        return np.asarray(out.samples, float).reshape(len(out.samples), -1)
