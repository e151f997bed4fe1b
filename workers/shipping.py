"""Shipping a robot group's closed segments to the buffer without waiting on it.

Policy segments go in batches every `every_s`; a segment with human steps goes at once and is kept until the
buffer acknowledges it durable, so an operator's label is never lost while the run lasts. A send that fails is
said once (`ship_failed`, with the buffer's own error) and its human segments are sent again every RETRY_S; while
any human segment is refused, or goes unacknowledged for ACK_DEADLINE_S, `down` says why (the group's robots hold
and ask nobody for help). At the end, what the buffer still has not acknowledged after FLUSH_S is logged as lost.

    shipper = Shipper(buffer, every_s=0.25, clock=time.time, emit=robot_events)
    shipper.add(segment); shipper.ship()          # between control steps
    shipper.flush()                               # at the end: sent and acknowledged, or logged as lost
"""

from __future__ import annotations

import time
from collections.abc import Callable

from buffers.schema import Segment
from workers.roles import BufferRole
from workers.transport import Endpoint, Late, Pending, cause_of

RETRY_S = 1.0
"""how often human segments the buffer refused are sent again"""
ACK_DEADLINE_S = 5.0
"""how long a human segment may go unacknowledged before the group counts storage as down"""
FLUSH_S = 10.0
"""how long the end of a run waits for the buffer to acknowledge what is left"""


class Shipper:
    def __init__(self, buffer: Endpoint[BufferRole], every_s: float, clock: Callable[[], float],
                 emit: Callable[..., None]):
        self.buffer, self.every_s, self.clock, self.emit = buffer, every_s, clock, emit
        self.outbox: list[Segment] = []
        self.unacked: dict[str, Segment] = {}  # human segments sent but not yet durable
        self.in_flight: list[tuple[Pending[list[str]], list[Segment], float]] = []  # (call, batch, sent at)
        self.last_ship = 0.0
        self.refused = ""  # the buffer's error while human segments it refused wait to be sent again ("": none)
        self.resend: set[str] = set()  # keys of human segments whose send failed, to be sent again
        self.last_try = 0.0  # when refused human segments were last sent again
        self.failing = False  # the last send failed (said once, until one succeeds)

    @property
    def down(self) -> str:
        """Why this group cannot keep a correction now ("": it can)."""
        if self.refused:
            return self.refused
        now = self.clock()
        late = min((sent for _, batch, sent in self.in_flight if any(s.human for s in batch)), default=now)
        return f"the buffer has not acknowledged a correction for {now - late:.0f} s" \
            if now - late >= ACK_DEADLINE_S else ""

    def add(self, seg: Segment) -> None:
        self.outbox.append(seg)
        if seg.human:
            self.unacked[seg.key] = seg
            self.ship(force=True)

    def ship(self, force: bool = False) -> None:
        self.collect_acks()
        now = self.clock()
        if self.resend and now - self.last_try >= RETRY_S:  # the buffer refused: tried again every RETRY_S
            self.last_try, force = now, True
            waiting = {s.key for s in self.outbox}
            self.outbox.extend(self.unacked[k] for k in sorted(self.resend) if k not in waiting and not self.sent(k))
        if self.outbox and (force or now - self.last_ship >= self.every_s):
            batch, self.outbox = self.outbox, []
            self.in_flight.append((self.buffer.call(BufferRole.add, batch), batch, now))
            self.last_ship = now

    def sent(self, key: str) -> bool:
        """A segment of this key is in a send not yet answered."""
        return any(s.key == key for _, batch, _ in self.in_flight for s in batch)

    def flush(self) -> None:
        """Sends what is left and waits FLUSH_S at most for the buffer to take it; human segments it has not
        acknowledged by then are logged as lost (`unstored`)."""
        end = time.monotonic() + FLUSH_S
        self.ship(force=True)
        while self.in_flight or self.resend:
            left = end - time.monotonic()
            if left <= 0:
                break
            for pending, _, _ in self.in_flight:
                try:
                    pending.result(left)
                except Late:
                    break
                except Exception:  # noqa: BLE001 - collected (and said) below
                    pass
            self.collect_acks()
            if self.resend:
                time.sleep(min(RETRY_S, max(0.0, end - time.monotonic())))
                self.last_try = 0.0
                self.ship(force=True)
        if self.unacked:
            self.emit("unstored", keys=sorted(self.unacked), steps=sum(map(len, self.unacked.values())),
                      error=self.down or "the run ended before the buffer acknowledged them")

    def collect_acks(self) -> None:
        """Drops acknowledged human segments; a refused send is said once per outage and its human segments kept."""
        still: list[tuple[Pending[list[str]], list[Segment], float]] = []
        for pending, batch, sent in self.in_flight:
            if not pending.ready():
                still.append((pending, batch, sent))
                continue
            human = any(s.human for s in batch)
            try:
                acked = pending.result()
            except Exception as err:  # noqa: BLE001 - the buffer failed: keep human segments, resend
                why = cause_of(err)
                if not self.failing:
                    self.emit("ship_failed", error=why, segments=len(batch))
                    self.last_try = self.clock()  # sent again RETRY_S from now
                self.failing = True
                if human:
                    self.refused = why
                    self.resend.update(s.key for s in batch if s.key in self.unacked)
                continue
            self.failing = False
            for key in acked:
                seg = self.unacked.pop(key, None)
                self.resend.discard(key)
                if seg is not None:  # the operator's steps are durable: what the fault benchmark counts
                    self.emit("stored", robot=seg.robot, seq=seg.seq, steps=len(seg))
            if not self.resend:
                self.refused = ""
        self.in_flight = still
