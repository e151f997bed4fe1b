"""How components call each other, the same way in-process and across Ray.

    buffer = LocalEndpoint(BufferWorker(...))        # or RayEndpoint(actor_handle)
    pending = buffer.call("add", segments)          # never blocks
    if pending.ready(): acked = pending.result()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


class Pending(Protocol):
    def ready(self) -> bool: ...

    def result(self) -> Any: ...


class Endpoint(Protocol):
    transient: tuple[type[BaseException], ...]
    """errors of a call to a component that is being restarted, worth trying again (none in-process)"""

    def call(self, method: str, *args: Any) -> Pending: ...


class Done:
    """A call that already finished (or failed) in this process."""

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def ready(self) -> bool:
        return True

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class LocalEndpoint:
    """Calls a plain object's method at once; errors surface at result(), as they would remotely."""

    transient: tuple[type[BaseException], ...] = ()  # nothing in-process restarts: an error is an error

    def __init__(self, target: Any):
        self.target = target

    def call(self, method: str, *args: Any) -> Pending:
        try:
            return Done(getattr(self.target, method)(*args))
        except Exception as err:  # noqa: BLE001 - delivered to the caller like a remote error
            return Done(error=err)


def settled(endpoint: Endpoint, method: str, *args: Any, tries: int = 30) -> Any:
    """A call's result, tried again a second later while it fails with one of the endpoint's `transient` errors
    (an actor that Ray is restarting), up to `tries` times. Only for calls that are safe to repeat (start-up:
    demos, pretraining; the end of a run: halt, the final version, stop)."""
    for _ in range(tries - 1):
        try:
            return endpoint.call(method, *args).result()
        except endpoint.transient:
            time.sleep(1.0)
    return endpoint.call(method, *args).result()


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
