"""A simulated leader arm for tests: a MuJoCo arm (the follower task's kinematics) moved by a scripted or recorded
human, answering DYNAMIXEL Protocol 2.0 instruction packets with real status packets over a real pseudo-terminal,
so the real reader and parser run (teleop_devices.leader_arm).

    human = Trajectory.scripted(start, [Move(joints=goal, trigger=0.0, buttons=1)], seed=0)
    sim = SimLeader(LeaderConfig(), human, clock)      # sim.port: the pty to open as the leader's serial port
    bus = LeaderBus.open(replace(cfg, port=sim.port), clock)

The human is a sequence of moves, each after a reaction lag (simple visual reaction ~0.2-0.25 s, Woods et al.,
Front. Hum. Neurosci. 2015) with a minimum-jerk profile (Flash & Hogan, J. Neurosci. 1985) of a duration that grows
with the distance, plus smoothed tremor; a recorded trajectory is the same arrays, sampled from a real leader.
It imports mujoco: a process that also renders picks MuJoCo's GL backend first (dagger.gl.configure_gl).
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teleop_devices import dynamixel as dxl
from teleop_devices.leader_arm import LeaderConfig, rad_to_ticks

REACHER_XML = "envs/mujoco/assets/reacher.xml"  # inside gymnasium: the follower's (reacher-joint's) arm


@dataclass
class Move:
    """One deliberate move of the leader: to `joints` (leader rad) and `trigger` (rad), holding `buttons`."""

    joints: Sequence[float]
    trigger: float = 0.0
    buttons: int = 1  # the handle board's byte during the move: bit 0 deadman, 1 hand back, 2 e-stop
    duration_s: float | None = None  # None: 0.4 s + 0.25 s per rad of the largest joint change
    lag_s: float = 0.25  # the reaction time before it starts


@dataclass
class Trajectory:
    """A human's leader trajectory, sampled: times (s), joints [T, n] (leader rad), trigger [T] (rad), buttons [T]."""

    t: np.ndarray
    joints: np.ndarray
    trigger: np.ndarray
    buttons: np.ndarray

    def at(self, t: float) -> tuple[np.ndarray, float, int]:
        """The pose at time t (interpolated; held before the first sample and after the last)."""
        i = int(np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(self.t) - 1))
        if i + 1 >= len(self.t) or t <= self.t[0]:
            return self.joints[i].copy(), float(self.trigger[i]), int(self.buttons[i])
        w = (t - self.t[i]) / (self.t[i + 1] - self.t[i])
        joints = (1 - w) * self.joints[i] + w * self.joints[i + 1]
        return joints, float((1 - w) * self.trigger[i] + w * self.trigger[i + 1]), int(self.buttons[i])

    @classmethod
    def scripted(cls, start: Sequence[float], moves: Sequence[Move], start_trigger: float = 0.0,
                 seed: int = 0, tremor_rad: float = 0.002, rate_hz: float = 200.0, t0: float = 0.0) -> Trajectory:
        """Minimum-jerk moves one after another from `start`, each after its lag, with tremor (std tremor_rad,
        smoothed over ~50 ms); the buttons change as each move's lag begins (a person presses, then moves)."""
        rng = np.random.default_rng(seed)
        joints, trigger, buttons = [np.asarray(start, float)], [start_trigger], [0]
        times = [t0]
        dt = 1.0 / rate_hz
        for move in moves:
            a, b = joints[-1], np.asarray(move.joints, float)
            trig_a = trigger[-1]
            span = move.duration_s if move.duration_s is not None else 0.4 + 0.25 * float(np.abs(b - a).max())
            for _ in range(round(move.lag_s / dt)):
                times.append(times[-1] + dt)
                joints.append(a)
                trigger.append(trig_a)
                buttons.append(move.buttons)
            steps = max(1, round(span / dt))
            for k in range(1, steps + 1):
                tau = k / steps
                s = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
                times.append(times[-1] + dt)
                joints.append(a + s * (b - a))
                trigger.append(trig_a + s * (move.trigger - trig_a))
                buttons.append(move.buttons)
        path = np.array(joints)
        kernel = np.ones(max(1, round(0.05 * rate_hz)))
        noise = np.stack([np.convolve(rng.normal(size=len(path)), kernel, "same") for _ in range(path.shape[1])], 1)
        path = path + tremor_rad * noise / np.sqrt(len(kernel))
        return cls(np.array(times), path, np.array(trigger), np.array(buttons, int))


class SimLeader:
    """The leader's servos and handle board on one bus, behind a pty: every instruction addressed to them is answered
    as an X-series servo would (Sync Read / Read of Present Position, the board's button byte, Ping). Corrupt
    instructions are ignored (counted in `bad`), as servos drop packets whose CRC fails."""

    MODEL_NUMBER = 1060  # XL430-W250's, what a Ping answers

    def __init__(self, config: LeaderConfig, human: Trajectory, clock: Callable[[], float]):
        import gymnasium
        import mujoco

        self.config, self.human, self.clock = config, human, clock
        self.model = mujoco.MjModel.from_xml_path(str(Path(gymnasium.__file__).parent / REACHER_XML))
        self.data = mujoco.MjData(self.model)
        self.trigger, self.buttons = 0.0, 0
        self.requests = self.bad = 0
        self.answering = True
        self.lock = threading.Lock()
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave
        self.port = os.ttyname(slave)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self.serve, name="sim-leader", daemon=True)
        self.thread.start()

    def pose(self) -> None:
        """Moves the MuJoCo arm to where the human has the leader now."""
        import mujoco

        joints, self.trigger, self.buttons = self.human.at(self.clock())
        self.data.qpos[: len(joints)] = joints
        mujoco.mj_kinematics(self.model, self.data)

    def fingertip(self) -> np.ndarray:
        """The leader's fingertip (x, y) now, from the arm's kinematics."""
        with self.lock:
            self.pose()
            return self.data.body("fingertip").xpos[:2].copy()

    def register(self, ident: int, address: int, length: int) -> bytes | None:
        """`length` bytes of device `ident`'s control table at `address`; None where it has no such register."""
        cfg = self.config
        if ident == cfg.board_id and (address, length) == (cfg.buttons_address, 1):
            return bytes([self.buttons])
        if address != dxl.PRESENT_POSITION or length != 4:
            return None
        if ident in cfg.joint_ids:
            angle = float(self.data.qpos[list(cfg.joint_ids).index(ident)])
        elif ident == cfg.gripper_id:
            angle = self.trigger
        else:
            return None
        return rad_to_ticks(angle).to_bytes(4, "little", signed=True)

    def answer(self, pkt: dxl.Packet) -> bytes:
        """The status packets this instruction gets on the bus (b"" where no device of ours answers)."""
        with self.lock:
            self.pose()
            if pkt.instruction == dxl.SYNC_READ and pkt.id == dxl.BROADCAST_ID and len(pkt.params) >= 4:
                address, length = (int.from_bytes(pkt.params[i:i + 2], "little") for i in (0, 2))
                out = b""
                for ident in pkt.params[4:]:
                    data = self.register(ident, address, length)
                    if data is None:
                        break  # a missing servo: the rest of the chain waits for its answer, in vain
                    out += dxl.status(ident, 0, data)
                return out
            if pkt.instruction == dxl.READ and len(pkt.params) == 4:
                address, length = (int.from_bytes(pkt.params[i:i + 2], "little") for i in (0, 2))
                data = self.register(pkt.id, address, length)
                return b"" if data is None else dxl.status(pkt.id, 0, data)
            if pkt.instruction == dxl.PING and pkt.id in (*self.config.servo_ids, self.config.board_id):
                return dxl.status(pkt.id, 0, self.MODEL_NUMBER.to_bytes(2, "little") + b"\x2e")
            return b""

    def serve(self) -> None:
        buffer = b""
        while not self.closed.is_set():
            try:
                if not select.select([self.master], [], [], 0.05)[0]:
                    continue
                buffer += os.read(self.master, 4096)
            except (OSError, ValueError):
                return  # the pty is closed
            while True:
                raw, buffer = dxl.split_packet(buffer)
                if raw is None:
                    break
                try:
                    pkt = dxl.parse_packet(raw)
                except dxl.PacketError:
                    self.bad += 1
                    continue
                self.requests += 1
                reply = self.answer(pkt) if self.answering else b""
                try:
                    os.write(self.master, reply)
                except OSError:
                    return  # closed while answering

    def go_silent(self) -> None:
        """The bus stops answering (the leader's power or cable is gone); the port stays open."""
        self.answering = False

    def close(self) -> None:
        self.closed.set()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
