"""DYNAMIXEL Protocol 2.0 packets as the servos speak them: a pure codec, no I/O.

    port.write(sync_read([1, 2, 3], PRESENT_POSITION, 4))       # one instruction, every servo answers in turn
    packet, rest = split_packet(buffer)                           # the next whole packet in a byte stream, or None
    status = parse_status(packet, expect_id=1)                    # Status(id=1, error=0, params=b"...")

A packet is header FF FF FD 00, id, length (2 bytes LE: the bytes after it, CRC included), instruction, parameters,
CRC-16 (polynomial 0x8005, LE). In the instruction and parameters, FF FF FD is sent as FF FF FD FD (byte stuffing);
the length and the CRC cover the stuffed bytes. Anything that does not parse raises PacketError (a ValueError) naming
what and at which byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC  # 253 (0xFD) is reserved, 254 is broadcast

PING, READ, WRITE, STATUS, SYNC_READ = 0x01, 0x02, 0x03, 0x55, 0x82
PRESENT_POSITION = 132  # X-series control table: 4 bytes, signed, 4096 ticks a turn, 2048 at the centre
TICKS_PER_TURN = 4096
STATUS_ERRORS = {1: "result fail", 2: "instruction error", 3: "CRC error", 4: "data range error",
                 5: "data length error", 6: "data limit error", 7: "access error"}
"""the status packet's error number (its low 7 bits; bit 7 is the hardware alert, the data is still valid)"""


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The protocol's CRC-16 (polynomial 0x8005, initial value 0, not reflected) of the bytes before the CRC."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


class PacketError(ValueError):
    """A packet that cannot be trusted; the message says what, at which byte, and shows the bytes in hex."""

    def __init__(self, problem: str, data: bytes, at: int | None = None):
        self.problem, self.data, self.at = problem, data, at
        where = "" if at is None else f" at byte {at}"
        super().__init__(f"dynamixel: {problem}{where} in packet [{data[:64].hex(' ') or 'empty'}]"
                         f"{' ...' if len(data) > 64 else ''} ({len(data)} bytes)")


def stuff(body: bytes) -> bytes:
    """FD after every FF FF FD in the instruction and parameters, so no header appears inside a packet."""
    out = bytearray()
    for i, byte in enumerate(body):
        out.append(byte)
        if byte == 0xFD and i >= 2 and body[i - 2] == 0xFF and body[i - 1] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes, packet: bytes = b"", offset: int = 0) -> bytes:
    """The inverse of stuff; an FF FF FD not followed by its stuffed FD raises PacketError (packet, offset: where)."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if body[i] == 0xFD and i >= 2 and body[i - 2] == 0xFF and body[i - 1] == 0xFF:
            if i + 1 >= len(body) or body[i + 1] != 0xFD:
                raise PacketError("FF FF FD without its stuffed FD (a header inside a packet)", packet or body,
                                  offset + i - 2)
            i += 1
        i += 1
    return bytes(out)


def _check_id(ident: int) -> None:
    if not 0 <= ident <= BROADCAST_ID:
        raise ValueError(f"dynamixel: id {ident} is not in 0..{MAX_ID} or {BROADCAST_ID} (broadcast)")


def packet(ident: int, instruction: int, params: bytes = b"") -> bytes:
    """A whole packet: header, id, length, the stuffed instruction and parameters, CRC."""
    _check_id(ident)
    body = stuff(bytes([instruction]) + bytes(params))
    head = HEADER + bytes([ident]) + (len(body) + 2).to_bytes(2, "little")
    return head + body + crc16(head + body).to_bytes(2, "little")


def ping(ident: int) -> bytes:
    return packet(ident, PING)


def read(ident: int, address: int, length: int) -> bytes:
    """Read `length` bytes of servo `ident`'s control table from `address`; one status packet answers."""
    return packet(ident, READ, address.to_bytes(2, "little") + length.to_bytes(2, "little"))


def sync_read(ids: Iterable[int], address: int, length: int) -> bytes:
    """Read the same `length` bytes at `address` from every servo in `ids`; each answers in that order."""
    ids = list(ids)
    for ident in ids:
        if not 0 <= ident <= MAX_ID:
            raise ValueError(f"dynamixel: sync read of id {ident}, not in 0..{MAX_ID}")
    return packet(BROADCAST_ID, SYNC_READ, address.to_bytes(2, "little") + length.to_bytes(2, "little") + bytes(ids))


def status(ident: int, error: int = 0, params: bytes = b"") -> bytes:
    """A servo's status packet (what a servo, or the simulated leader, sends back)."""
    return packet(ident, STATUS, bytes([error]) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """A parsed packet: id, instruction and unstuffed parameters (a status packet's error byte is params[0])."""

    id: int
    instruction: int
    params: bytes


@dataclass(frozen=True)
class Status:
    id: int
    error: int  # 0: fine; bit 7: hardware alert (data still valid); low 7 bits: STATUS_ERRORS
    params: bytes


def split_packet(buffer: bytes) -> tuple[bytes | None, bytes]:
    """The first whole packet in a byte stream and what follows it; (None, the unread tail) while one is incomplete.

    Bytes before a header are noise on the bus and dropped. The packet is not checked (parse_packet does that)."""
    start = buffer.find(HEADER)
    if start < 0:
        keep = max(len(buffer) - (len(HEADER) - 1), 0)  # a header may have started in the last three bytes
        return None, buffer[keep:]
    buffer = buffer[start:]
    if len(buffer) < 7:
        return None, buffer
    total = 7 + int.from_bytes(buffer[5:7], "little")
    if len(buffer) < total:
        return None, buffer
    return buffer[:total], buffer[total:]


def parse_packet(data: bytes) -> Packet:
    """One whole packet, checked: header, id, length, CRC, stuffing. Raises PacketError naming the fault."""
    data = bytes(data)
    if len(data) < 10:
        raise PacketError(f"too short: {len(data)} bytes, a packet has at least 10", data)
    if data[:4] != HEADER:
        bad = next(i for i in range(4) if data[i] != HEADER[i])
        raise PacketError(f"bad header byte 0x{data[bad]:02x}, expected 0x{HEADER[bad]:02x}", data, bad)
    if data[4] > BROADCAST_ID:
        raise PacketError(f"bad id {data[4]} (0..{MAX_ID}, {BROADCAST_ID} broadcast)", data, 4)
    length = int.from_bytes(data[5:7], "little")
    if length != len(data) - 7:
        raise PacketError(f"bad length {length}: {len(data) - 7} bytes follow it", data, 5)
    want, got = crc16(data[:-2]), int.from_bytes(data[-2:], "little")
    if want != got:
        raise PacketError(f"bad CRC 0x{got:04x}, computed 0x{want:04x}", data, len(data) - 2)
    body = unstuff(data[7:-2], data, 7)
    return Packet(data[4], body[0], body[1:])


def parse_status(data: bytes, expect_id: int | None = None) -> Status:
    """A status packet, checked (and, with expect_id, from that servo). Raises PacketError naming the fault."""
    pkt = parse_packet(data)
    if pkt.instruction != STATUS:
        raise PacketError(f"instruction 0x{pkt.instruction:02x} where a status packet (0x55) was expected", data, 7)
    if not pkt.params:
        raise PacketError("status packet without its error byte", data, 8)
    if expect_id is not None and pkt.id != expect_id:
        raise PacketError(f"wrong id {pkt.id}, expected {expect_id}", data, 4)
    return Status(pkt.id, pkt.params[0], pkt.params[1:])


def status_error(s: Status) -> str:
    """'' when the status reports no failure (a hardware alert alone still carries valid data), else what failed."""
    number = s.error & 0x7F
    return "" if number == 0 else f"servo {s.id}: {STATUS_ERRORS.get(number, f'error {number}')}"
