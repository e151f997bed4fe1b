"""How components call each other, the same way in-process and across Ray.

    buffer = LocalEndpoint(BufferWorker(...))        # or RayEndpoint(actor_handle)
    pending = buffer.call("add", segments)          # never blocks
    if pending.ready(): acked = pending.result()
"""

from __future__ import annotations

from typing import Any, Protocol


class Pending(Protocol):
    def ready(self) -> bool: ...

    def result(self) -> Any: ...


class Endpoint(Protocol):
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

    def __init__(self, target: Any):
        self.target = target

    def call(self, method: str, *args: Any) -> Pending:
        try:
            return Done(getattr(self.target, method)(*args))
        except Exception as err:  # noqa: BLE001 - delivered to the caller like a remote error
            return Done(error=err)
