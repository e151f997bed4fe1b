"""Shipping a robot's closed segments to the buffer without waiting on it.

Policy segments go in batches every `every_s`; a segment with human steps goes at once and is kept until the
buffer acknowledges it durable (a failed send is resent), so an operator's label is never lost.

    shipper = Shipper(buffer, every_s=0.25, clock=time.time, emit=robot_events)
    shipper.add(segment); shipper.ship()          # between control steps
    shipper.flush()                               # at the end: everything sent and acknowledged
"""

from __future__ import annotations

from collections.abc import Callable

from buffers.schema import Segment
from workers.roles import BufferRole
from workers.transport import Endpoint, Pending


class Shipper:
    def __init__(self, buffer: Endpoint[BufferRole], every_s: float, clock: Callable[[], float],
                 emit: Callable[..., None]):
        self.buffer, self.every_s, self.clock, self.emit = buffer, every_s, clock, emit
        self.outbox: list[Segment] = []
        self.unacked: dict[str, Segment] = {}  # human segments sent but not yet durable
        self.in_flight: list[tuple[Pending[list[str]], list[Segment]]] = []
        self.last_ship = 0.0

    def add(self, seg: Segment) -> None:
        self.outbox.append(seg)
        if seg.human:
            self.unacked[seg.key] = seg
            self.ship(force=True)

    def ship(self, force: bool = False) -> None:
        force = self.collect_acks() or force
        now = self.clock()
        if self.outbox and (force or now - self.last_ship >= self.every_s):
            batch, self.outbox = self.outbox, []
            self.in_flight.append((self.buffer.call(BufferRole.add, batch), batch))
            self.last_ship = now

    def flush(self) -> None:
        """Sends what is left and waits for every answer."""
        self.ship(force=True)
        for pending, _ in self.in_flight:
            pending.result()
        self.collect_acks()

    def collect_acks(self) -> bool:
        """Drops acknowledged human segments; True when a failed send must be retried now."""
        retry = False
        still: list[tuple[Pending[list[str]], list[Segment]]] = []
        for pending, batch in self.in_flight:
            if not pending.ready():
                still.append((pending, batch))
                continue
            try:
                for key in pending.result():
                    seg = self.unacked.pop(key, None)
                    if seg is not None:  # the operator's steps are durable: what the fault benchmark counts
                        self.emit("stored", robot=seg.robot, seq=seg.seq, steps=len(seg))
            except Exception as err:  # noqa: BLE001 - the buffer failed: keep human segments, resend
                self.emit("ship_failed", error=str(err)[:200], segments=len(batch))
                self.outbox.extend(s for s in batch if s.key in self.unacked)
                retry = True
        self.in_flight = still
        return retry
