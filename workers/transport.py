"""How components call each other, the same way in-process and across Ray.

A call names its method by reference to the role's Protocol (workers.roles), so mypy checks the method's name, its
arguments and its result's type; the endpoint calls the target's method of that name.

    buffer: Endpoint[BufferRole] = LocalEndpoint(BufferWorker(...))      # or RayEndpoint(actor_handle)
    pending = buffer.call(BufferRole.add, segments)                     # never blocks
    if pending.ready(): acked = pending.result()                        # list[str]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

SETTLE_TRIES = 30
"""how often settled() calls a component that is being restarted before the error goes to its caller"""
DEADLINE_S = 2.0
"""the longest the control plane waits for a component's answer in one round (a poll, the newest weights)"""
HUNG_S = 10.0
"""how long a component may leave a call unanswered before it is reported hung and handled as a dead one"""
SETTLE_DEADLINE_S = 600.0
"""the longest settled() waits for one answer (start-up's pretraining is its longest call)"""


class Late(TimeoutError):
    """A call between roles that did not answer within its deadline: the component hangs, or is very busy."""


class Pending(Protocol[T_co]):
    def ready(self) -> bool: ...

    def result(self, timeout: float | None = None) -> T_co:
        """The answer; waited for at most `timeout` seconds (None: as long as it takes), else Late."""
        ...


class Endpoint(Protocol[R_co]):
    """A component in role R_co (workers.roles), in this process or another."""

    transient: tuple[type[BaseException], ...]
    """errors of a call to a component that is being restarted, worth trying again (none in-process)"""

    def call(self, method: Callable[Concatenate[R_co, P], T], *args: P.args, **kwargs: P.kwargs) -> Pending[T]:
        """Calls the target's method named as `method` (a role's, e.g. BufferRole.add) with these arguments."""
        ...


class Done(Generic[T_co]):
    """A call that already finished (or failed) in this process."""

    def __init__(self, value: T_co | None = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def ready(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> T_co:
        if self.error is not None:
            raise self.error
        return cast(T_co, self.value)


class LocalEndpoint(Generic[R]):
    """Calls a plain object's method at once; errors surface at result(), as they would remotely."""

    transient: tuple[type[BaseException], ...] = ()  # nothing in-process restarts: an error is an error

    def __init__(self, target: R):
        self.target = target

    def call(self, method: Callable[Concatenate[R, P], T], *args: P.args, **kwargs: P.kwargs) -> Pending[T]:
        try:  # the target's own method of that name, never the role's stub
            return Done(getattr(self.target, method.__name__)(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - delivered to the caller like a remote error
            return Done(error=err)


def settled(endpoint: Endpoint[R], method: Callable[Concatenate[R, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A call's result, tried again a second later while it fails with one of the endpoint's `transient` errors
    (an actor that Ray is restarting), up to SETTLE_TRIES times; each try waits SETTLE_DEADLINE_S at most (Late: it
    hangs). Only for calls that are safe to repeat (start-up: demos, pretraining; the end of a run: halt, the final
    version, stop)."""
    for _ in range(SETTLE_TRIES - 1):
        try:
            return endpoint.call(method, *args, **kwargs).result(SETTLE_DEADLINE_S)
        except endpoint.transient:
            time.sleep(1.0)
    return endpoint.call(method, *args, **kwargs).result(SETTLE_DEADLINE_S)


def cause_of(err: BaseException, limit: int = 500) -> str:
    """What went wrong, in words: the component's own exception where a remote call wraps it (Ray's RayTaskError
    puts it last, after a traceback), with its type, e.g. "OSError: [Errno 27] File too large: '...'"."""
    inner = getattr(err, "cause", None)
    err = inner if isinstance(inner, BaseException) else err
    return f"{type(err).__name__}: {err}"[:limit]


def guard(fn: Callable[[], None], failed: Callable[[str], None]) -> Callable[[], None]:
    """fn, with any exception handed to `failed` (which reports it to the supervisor), never only to a log."""

    def guarded() -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - any failure must reach the supervisor
            failed(f"{type(err).__name__}: {err}"[:300])

    return guarded


def start_loop(loop: Callable[[], None], name: str, failed: Callable[[str], None]) -> threading.Thread:
    """Runs an actor's loop in a daemon thread; an exception ends the loop and goes to `failed`."""
    thread = threading.Thread(target=guard(loop, failed), name=name, daemon=True)
    thread.start()
    return thread
