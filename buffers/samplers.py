"""Samplers: which storage indices make up a batch (one method, so a new one is a small class).

    idx = HumanWeightedSampler(0.5).sample(storage, 256, np.random.default_rng(0))
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from buffers.storage import ReplayStorage


class Sampler(Protocol):
    def sample(self, storage: ReplayStorage, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Indices into storage, batch_size of them."""
        ...


class UniformSampler:
    """Every stored step equally likely, with replacement."""

    def sample(self, storage: ReplayStorage, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        if len(storage) == 0:
            raise ValueError("replay storage is empty: nothing to sample")
        return rng.integers(0, len(storage), size=batch_size, dtype=np.int64)


class HumanWeightedSampler:
    """human_fraction of each batch from operator interventions, the rest uniform over all labels.

    The expected intervention share is f + (1 - f) * p; with no interventions yet it is uniform.
    """

    def __init__(self, human_fraction: float = 0.5) -> None:
        if not 0.0 <= human_fraction <= 1.0:
            raise ValueError(f"human_fraction must be in [0, 1], got {human_fraction}")
        self.human_fraction = human_fraction

    def sample(self, storage: ReplayStorage, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        human = storage.intervention_indices()
        if len(human) == 0:
            return UniformSampler().sample(storage, batch_size, rng)
        exact = self.human_fraction * batch_size
        n_human = int(exact) + int(rng.random() < exact - int(exact))  # unbiased rounding
        picked = human[rng.integers(0, len(human), size=n_human)]
        rest = rng.integers(0, len(storage), size=batch_size - n_human, dtype=np.int64)
        return rng.permutation(np.concatenate([picked, rest]))
