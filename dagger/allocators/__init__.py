"""Fleet allocators (Fleet-DAgger / Interactive Fleet Learning): which robots get the operators.

    allocator = make_allocator("cur", humans=10)       # options go to the class (priority: aging_s)
    order = allocator.allocate(signals)                # see base.FleetSignals

A new allocator is one file with one class registered in ALLOCATORS.
"""

from __future__ import annotations

from collections.abc import Callable

from dagger.allocators.base import FleetAllocator, FleetSignals
from dagger.allocators.cur import CURAllocator, FleetEnsembleAllocator
from dagger.allocators.priority import PriorityAllocator
from dagger.allocators.simple import FifoAllocator, RandomAllocator
from dagger.allocators.thrifty import FleetThriftyAllocator

ALLOCATORS: dict[str, Callable[..., FleetAllocator]] = {
    "random": RandomAllocator,
    "fleet-ensemble": FleetEnsembleAllocator,
    "fleet-thrifty": FleetThriftyAllocator,
    "cur": CURAllocator,
    "fifo": FifoAllocator,
    "priority": PriorityAllocator,
}


READS_RISK = {"cur"}
"""allocators that read the violation risk: in the live loop the learner then trains the policy's hazard critic"""


def make_allocator(name: str, humans: int, seed: int = 0, **options: float) -> FleetAllocator:
    if name not in ALLOCATORS:
        raise ValueError(f"unknown allocator {name!r}; choose one of {sorted(ALLOCATORS)}")
    return ALLOCATORS[name](humans, seed=seed, **options)


__all__ = ["ALLOCATORS", "READS_RISK", "FleetAllocator", "FleetSignals", "make_allocator"]
