"""A leader arm: a passive copy of the follower built from DYNAMIXEL servos (GELLO-style), read over its serial bus.

    bus = LeaderBus.open(LeaderConfig(port="/dev/ttyUSB0"))    # waits for the first whole read; OSError if none
    leader = LeaderOperator(bus, act_dim=3)                       # a HumanDevice for the operator station
    reading = leader.reading()                                    # absolute joint targets + gripper, the deadman

Every period the reader sends one Sync Read of Present Position to the joint and trigger servos, then a Read of the
button byte of the I/O board at the handle: bit 0 the handle switch (the deadman: held while the operator grips the
handle), bit 1 hand back, bit 2 e-stop. Both go over the same bus, in DYNAMIXEL Protocol 2.0 (teleop_devices.dynamixel).
The reading's action is a pose for the follower (`absolute`): the robot waits until it matches the follower's
command, then ramps (teleop_devices.remote).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from teleop_devices import dynamixel as dxl
from teleop_devices.reading import DeviceReading

DEADMAN_BIT, HAND_BACK_BIT, E_STOP_BIT = 0, 1, 2


@dataclass
class LeaderConfig:
    """Where the leader arm is and how its joints become the follower's."""

    port: str = "/dev/ttyUSB0"
    """the leader's serial bus (a U2D2 or any USB-to-DYNAMIXEL adapter); any pyserial URL"""
    baudrate: int = 1_000_000
    """the servos' baud rate (X-series factory default is 57600; leader arms usually run 1 Mbps)"""
    joint_ids: Sequence[int] = (1, 2)
    """the leader's joint servos' ids, in the follower's joint order"""
    signs: Sequence[int] = (1, 1)
    """per joint, +1 or -1: follower angle = sign * leader angle + offset"""
    offsets: Sequence[float] = (0.0, 0.0)
    """per joint, rad: the follower's angle when the leader's servo reads its centre (2048 ticks)"""
    gripper_id: int = 3
    """the trigger's servo id: its position becomes the task's last action dim; -1: the task has no gripper"""
    gripper_open: float = 0.0
    """the trigger servo's angle (rad from its centre) when released"""
    gripper_closed: float = 0.6
    """the trigger servo's angle (rad from its centre) when squeezed fully"""
    gripper_action: Sequence[float] = (-1.0, 1.0)
    """the task's gripper action with the trigger released and squeezed (linear between)"""
    board_id: int = 100
    """id of the handle's DYNAMIXEL-protocol I/O board, whose button byte holds the deadman (bit 0), hand back (1)
    and e-stop (2)"""
    buttons_address: int = 200
    """address of that byte in the board's control table"""
    rate_hz: float = 200.0
    """reads a second the reader aims for (>= 100)"""
    timeout_s: float = 0.05
    """a read not answered in full within this is a failed read (counted; the next one starts clean)"""
    lost_after_s: float = 0.5
    """no whole read for this long: the leader is gone (the station stops its robots). A late read already stops
    the robot sooner: it ages the reading from the read (safety.max_age_s)"""

    def __post_init__(self) -> None:
        self.joint_ids, self.signs = tuple(self.joint_ids), tuple(self.signs)
        self.offsets, self.gripper_action = tuple(self.offsets), tuple(self.gripper_action)
        n = len(self.joint_ids)
        if len(self.signs) != n or len(self.offsets) != n:
            raise ValueError(f"leader: {n} joint_ids but {len(self.signs)} signs and {len(self.offsets)} offsets")
        if any(s not in (1, -1) for s in self.signs):
            raise ValueError(f"leader: signs must be 1 or -1, got {list(self.signs)}")
        ids = [*self.joint_ids, *([self.gripper_id] if self.gripper_id >= 0 else []), self.board_id]
        if len(set(ids)) != len(ids) or not all(0 <= i <= dxl.MAX_ID for i in ids):
            raise ValueError(f"leader: servo and board ids must be distinct, in 0..{dxl.MAX_ID}: {ids}")
        if self.gripper_id >= 0 and self.gripper_open == self.gripper_closed:
            raise ValueError(f"leader: gripper_open and gripper_closed are both {self.gripper_open}")
        if len(self.gripper_action) != 2:
            raise ValueError(f"leader: gripper_action is (released, squeezed), got {list(self.gripper_action)}")
        if self.rate_hz < 100:
            raise ValueError(f"leader: rate_hz must be >= 100, got {self.rate_hz}")

    @property
    def servo_ids(self) -> tuple[int, ...]:
        """The ids the Sync Read asks, in order: the joints, then the trigger."""
        return (*self.joint_ids, *([self.gripper_id] if self.gripper_id >= 0 else []))

    @property
    def act_dim(self) -> int:
        return len(self.joint_ids) + (self.gripper_id >= 0)

    def to_leader(self, joints: Sequence[float]) -> np.ndarray:
        """The leader's joint angles that map to these follower angles (calibration, the simulated leader)."""
        return (np.asarray(joints, float) - np.array(self.offsets)) * np.array(self.signs)

    def trigger_for(self, gripper: float) -> float:
        """The trigger angle that maps to this gripper action."""
        lo, hi = self.gripper_action
        return self.gripper_open + (gripper - lo) / (hi - lo) * (self.gripper_closed - self.gripper_open)


def ticks_to_rad(ticks: int) -> float:
    return (ticks - dxl.TICKS_PER_TURN // 2) * 2 * math.pi / dxl.TICKS_PER_TURN


def rad_to_ticks(angle: float) -> int:
    return round(angle * dxl.TICKS_PER_TURN / (2 * math.pi)) + dxl.TICKS_PER_TURN // 2


def to_action(config: LeaderConfig, ticks: Sequence[int]) -> np.ndarray:
    """Pure mapping: the Sync Read's positions (servo_ids order) -> the follower's joint targets (+ gripper)."""
    angles = np.array([ticks_to_rad(t) for t in ticks])
    n = len(config.joint_ids)
    joints = np.array(config.signs) * angles[:n] + np.array(config.offsets)
    if config.gripper_id < 0:
        return joints
    lo, hi = config.gripper_action
    squeeze = np.clip((angles[n] - config.gripper_open) / (config.gripper_closed - config.gripper_open), 0.0, 1.0)
    return np.append(joints, lo + squeeze * (hi - lo))


@dataclass(frozen=True)
class LeaderState:
    """One whole read: positions (servo_ids order), the board's button byte, when it completed, its number."""

    ticks: tuple[int, ...]
    buttons: int
    t: float
    seq: int


class LeaderBus:
    """The leader's bus, read on its own thread: Sync Read of the servos, then the board's buttons, rate_hz a second.

    A read that times out or brings a bad packet is counted (`errors`, `last_error`) and the next one starts clean;
    a port that fails (unplugged) ends the thread (`failed`)."""

    def __init__(self, port: Any, config: LeaderConfig, clock: Callable[[], float] = time.time,
                 rate_window_s: float = 1.0):
        """clock: the station's (a read's time is its reading's t_read, which the robot ages it from)."""
        self.port, self.config, self.clock = port, config, clock
        self.latest: LeaderState | None = None
        self.reads = self.errors = 0
        self.last_error = self.failed = ""
        self.started_at = clock()
        self.rate_window_s = rate_window_s
        self.done_at: deque[float] = deque()  # monotonic times of whole reads, for rate_hz
        self.buffer = b""
        self.sync = dxl.sync_read(config.servo_ids, dxl.PRESENT_POSITION, 4)
        self.ask_buttons = dxl.read(config.board_id, config.buttons_address, 1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"leader-bus {config.port}", daemon=True)

    @classmethod
    def open(cls, config: LeaderConfig, clock: Callable[[], float] = time.time,
             first_read_s: float = 1.0) -> LeaderBus:
        """Opens the port, starts reading and waits for the first whole read; OSError says what did not answer."""
        import serial

        try:
            port = serial.serial_for_url(config.port, baudrate=config.baudrate, timeout=0.002)
        except (serial.SerialException, ValueError) as e:
            raise OSError(f"leader arm: cannot open {config.port}: {e}") from e
        bus = cls(port, config, clock)
        bus.start()
        deadline = time.monotonic() + first_read_s
        while bus.latest is None and not bus.failed and time.monotonic() < deadline:
            time.sleep(0.005)
        if bus.latest is None:
            bus.close()
            why = bus.failed or bus.last_error or "no answer"
            raise OSError(f"leader arm on {config.port}: no whole read of servos {list(config.servo_ids)} and board "
                          f"{config.board_id} within {first_read_s} s ({why}); is it powered, at {config.baudrate} "
                          "baud, with these ids?")
        return bus

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=1.0)
        self.port.close()

    def run(self) -> None:
        import serial

        period = 1.0 / self.config.rate_hz
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.read_once()
            except (dxl.PacketError, TimeoutError) as e:
                self.errors += 1
                self.last_error = str(e)[:300]
                self.buffer = b""
                self.port.reset_input_buffer()
            except (serial.SerialException, OSError) as e:
                if not self.stopping.is_set():
                    self.failed = f"{self.config.port}: {e}"[:300]
                return
            next_at = max(next_at + period, time.monotonic())
            self.stopping.wait(next_at - time.monotonic())

    def read_once(self) -> None:
        """One whole read: raises PacketError (a bad or unexpected packet) or TimeoutError (a servo did not answer)."""
        deadline = time.monotonic() + self.config.timeout_s
        self.port.write(self.sync)
        ticks = []
        for ident in self.config.servo_ids:
            data = self.answer(ident, deadline)
            if len(data) != 4:
                raise dxl.PacketError(f"servo {ident} sent {len(data)} bytes of Present Position, expected 4", data)
            ticks.append(int.from_bytes(data, "little", signed=True))
        self.port.write(self.ask_buttons)
        buttons = self.answer(self.config.board_id, deadline)
        if len(buttons) != 1:
            raise dxl.PacketError(f"board {self.config.board_id} sent {len(buttons)} button bytes, expected 1", buttons)
        self.reads += 1
        self.latest = LeaderState(tuple(ticks), buttons[0], self.clock(), self.reads)
        self.done_at.append(time.monotonic())

    def answer(self, ident: int, deadline: float) -> bytes:
        """The parameters of the next status packet, which must come from `ident` and report no failure."""
        while True:
            packet, self.buffer = dxl.split_packet(self.buffer)
            if packet is not None:
                status = dxl.parse_status(packet, expect_id=ident)
                if dxl.status_error(status):
                    raise dxl.PacketError(dxl.status_error(status), packet, 8)
                return status.params
            if time.monotonic() > deadline:
                raise TimeoutError(f"leader arm: id {ident} did not answer within {self.config.timeout_s} s")
            self.buffer += self.port.read(max(1, self.port.in_waiting))

    def alive(self, now: float | None = None) -> bool:
        """The bus answers: a whole read within lost_after_s (of the bus's clock), and the port has not failed."""
        now = self.clock() if now is None else now
        last = self.started_at if self.latest is None else self.latest.t
        return not self.failed and now - last <= self.config.lost_after_s

    def rate_hz(self) -> float:
        """Whole reads a second over the last rate_window_s (wall time), up to now."""
        now = time.monotonic()
        while self.done_at and self.done_at[0] < now - self.rate_window_s:
            self.done_at.popleft()
        if len(self.done_at) < 2:
            return 0.0
        return (len(self.done_at) - 1) / max(now - self.done_at[0], 1e-9)


class LeaderOperator:
    """A leader arm as the operator station reads it (HumanDevice)."""

    def __init__(self, bus: LeaderBus, act_dim: int):
        if act_dim != bus.config.act_dim:
            raise ValueError(f"leader: {len(bus.config.joint_ids)} joints"
                             f"{' and a gripper' if bus.config.gripper_id >= 0 else ''} make {bus.config.act_dim} "
                             f"action dims; the task has {act_dim} (set leader.joint_ids / leader.gripper_id)")
        self.bus, self.act_dim = bus, act_dim
        self.label = f"leader arm {bus.config.port}"

    def reading(self) -> DeviceReading:
        state = self.bus.latest
        if state is None:
            return DeviceReading(action=None, deadman=False, absolute=True, age_s=math.inf)

        def pressed(bit: int) -> bool:
            return bool(state.buttons >> bit & 1)

        held = pressed(DEADMAN_BIT)
        return DeviceReading(action=to_action(self.bus.config, state.ticks), takeover=held,
                             hand_back=pressed(HAND_BACK_BIT), deadman=held, e_stop=pressed(E_STOP_BIT),
                             absolute=True, age_s=max(0.0, self.bus.clock() - state.t), t_read=state.t)

    def present(self) -> bool:
        return self.bus.alive()

    def rate_hz(self) -> float:
        return self.bus.rate_hz()
