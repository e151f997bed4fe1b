"""The leader arm: the DYNAMIXEL codec, the joint mapping, the bus reader over a real pty against the simulated leader,
a lost bus, align-then-ramp, and the leader driving reacher-joint through the station and a real RobotWorker."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagger.app.words import with_operator
from dagger.config import load_config
from dagger.control import State
from dagger.gl import configure_gl
from teleop_devices import dynamixel as dxl
from teleop_devices.leader_arm import LeaderBus, LeaderConfig, LeaderOperator, rad_to_ticks, to_action
from teleop_devices.remote import RemoteOperator, SafetyConfig
from teleop_devices.sim_leader import Move, SimLeader, Trajectory
from teleop_devices.station import OperatorStation
from tests.one_robot import OneRobot
from workers.buffer import BufferWorker
from workers.learner import Learner
from workers.transport import LocalEndpoint

configure_gl()  # before the simulated leader imports mujoco, which reads MUJOCO_GL once: renderers after it work

# ---- the codec ----

DOCUMENTED = [  # ROBOTIS e-Manual, Protocol 2.0: the packets its examples show
    (dxl.ping(1), "ff ff fd 00 01 03 00 01 19 4e"),
    (dxl.read(1, dxl.PRESENT_POSITION, 4), "ff ff fd 00 01 07 00 02 84 00 04 00 1d 15"),
    (dxl.sync_read([1, 2], dxl.PRESENT_POSITION, 4), "ff ff fd 00 fe 09 00 82 84 00 04 00 01 02 ce fa"),
    (dxl.status(1, 0, (166).to_bytes(4, "little")), "ff ff fd 00 01 08 00 55 00 a6 00 00 00 8c c0"),
    (dxl.status(2, 0, (2079).to_bytes(4, "little")), "ff ff fd 00 02 08 00 55 00 1f 08 00 00 ba be"),
    (dxl.status(1, 0, bytes([0x06, 0x04, 0x26])), "ff ff fd 00 01 07 00 55 00 06 04 26 65 5d"),
]


@pytest.mark.parametrize(("made", "manual"), DOCUMENTED)
def test_packets_match_the_manuals_examples(made, manual):
    assert made.hex(" ") == manual


ids = st.one_of(st.integers(0, dxl.MAX_ID), st.just(dxl.BROADCAST_ID))


@settings(max_examples=300, deadline=None)
@given(ident=ids, instruction=st.integers(0, 255), params=st.binary(max_size=200))
def test_round_trip(ident, instruction, params):
    assert dxl.parse_packet(dxl.packet(ident, instruction, params)) == dxl.Packet(ident, instruction, params)


@settings(max_examples=200, deadline=None)
@given(params=st.lists(st.sampled_from([b"\xff", b"\xfd", b"\x00", b"\xff\xff\xfd"]), max_size=30).map(b"".join))
def test_stuffing_round_trips_and_hides_every_header(params):
    pkt = dxl.packet(1, dxl.WRITE, params)
    assert dxl.HEADER not in pkt[4:] and dxl.parse_packet(pkt).params == params
    assert dxl.unstuff(dxl.stuff(params)) == params


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=40).filter(lambda b: dxl.HEADER not in b), ident=st.integers(0, dxl.MAX_ID),
       data=st.binary(max_size=8), cut=st.integers(0, 30))
def test_a_stream_with_noise_splits_into_its_packets(noise, ident, data, cut):
    first, second = dxl.status(ident, 0, data), dxl.status(ident, 0x80, data)
    stream = noise + first + second
    got, rest = dxl.split_packet(stream[: len(noise) + min(cut, len(first) - 1)])
    assert got is None  # a packet not all there yet
    got, rest = dxl.split_packet(stream)
    assert got == first and dxl.split_packet(rest) == (second, b"")
    assert dxl.parse_status(second, expect_id=ident) == dxl.Status(ident, 0x80, data)
    assert dxl.status_error(dxl.parse_status(second)) == ""  # a hardware alert still carries valid data


@settings(max_examples=500, deadline=None)
@given(garbage=st.one_of(st.binary(max_size=60), st.binary(max_size=40).map(lambda b: dxl.HEADER + b)))
def test_garbage_raises_a_packet_error_and_nothing_else(garbage):
    try:
        dxl.parse_status(garbage)
    except dxl.PacketError as e:
        assert str(e).startswith("dynamixel: ")


@settings(max_examples=300, deadline=None)
@given(params=st.binary(min_size=1, max_size=20), at=st.integers(0, 100), flip=st.integers(1, 255))
def test_any_corrupt_byte_is_caught_and_located(params, at, flip):
    good = bytearray(dxl.status(7, 0, params))
    at %= len(good)
    good[at] ^= flip
    with pytest.raises(dxl.PacketError, match="at byte"):
        dxl.parse_status(bytes(good), expect_id=7)


def test_errors_name_what_and_where():
    pkt = dxl.status(2, 0, b"\x01\x02\x03\x04")
    with pytest.raises(dxl.PacketError, match="wrong id 2, expected 1 at byte 4"):
        dxl.parse_status(pkt, expect_id=1)
    with pytest.raises(dxl.PacketError, match=f"bad CRC .* at byte {len(pkt) - 2}"):
        dxl.parse_status(pkt[:-1] + bytes([pkt[-1] ^ 1]))
    with pytest.raises(dxl.PacketError, match="bad length 8: 7 bytes follow it at byte 5"):
        dxl.parse_status(pkt[:-3] + pkt[-2:])
    with pytest.raises(dxl.PacketError, match="where a status packet"):
        dxl.parse_status(dxl.ping(1))
    unstuffed = dxl.HEADER + b"\x01\x07\x00\x55\x00\xff\xff\xfd"
    with pytest.raises(dxl.PacketError, match=r"without its stuffed FD \(a header inside a packet\) at byte 9"):
        dxl.parse_packet(unstuffed + dxl.crc16(unstuffed).to_bytes(2, "little"))
    failed = dxl.parse_status(dxl.status(3, 0x84))
    assert dxl.status_error(failed) == "servo 3: data range error"


# ---- the mapping ----

def test_leader_joints_map_to_the_followers_with_signs_offsets_and_the_trigger():
    cfg = LeaderConfig(signs=(1, -1), offsets=(0.5, -0.25), gripper_open=0.2, gripper_closed=-0.4)
    ticks = [rad_to_ticks(0.3), rad_to_ticks(0.7), rad_to_ticks(-0.1)]  # trigger half way
    np.testing.assert_allclose(to_action(cfg, ticks), [0.8, -0.95, 0.0], atol=2e-3)
    assert to_action(cfg, [2048, 2048, rad_to_ticks(0.5)])[2] == -1.0  # beyond released: released
    assert to_action(cfg, [2048, 2048, rad_to_ticks(-1.0)])[2] == 1.0
    np.testing.assert_allclose(cfg.to_leader([0.8, -0.95]), [0.3, 0.7])
    assert cfg.trigger_for(0.0) == pytest.approx(-0.1)
    assert to_action(LeaderConfig(gripper_id=-1), [2048, 3072]).shape == (2,)


@pytest.mark.parametrize(("fields", "message"), [
    ({"signs": (1, 2)}, "signs must be 1 or -1"),
    ({"offsets": (0.0,)}, "2 joint_ids but 2 signs and 1 offsets"),
    ({"board_id": 1}, "distinct"),
    ({"rate_hz": 50}, "rate_hz must be >= 100"),
])
def test_bad_leader_config_says_what(fields, message):
    with pytest.raises(ValueError, match=message):
        LeaderConfig(**fields)


# ---- the bus, over a pty, against the simulated leader ----

class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def wait_reads(bus: LeaderBus, n: int = 2) -> None:
    """Until n more whole reads: the newest then began after anything the caller did before (a hang: timeout)."""
    target = bus.reads + n
    while bus.reads < target:
        assert not bus.failed, bus.failed
        time.sleep(0.001)


@pytest.fixture
def leader():
    """A simulated leader holding still, read by the real bus on a manual clock."""
    made = []

    def make(human: Trajectory, clock: Clock, cfg: LeaderConfig | None = None):
        cfg = cfg or LeaderConfig()
        sim = SimLeader(cfg, human, clock)
        bus = LeaderBus.open(replace(cfg, port=sim.port), clock=clock)
        made.append((bus, sim))
        return sim, bus

    yield make
    for bus, sim in made:
        bus.close()
        sim.close()


def test_the_reader_reads_the_leaders_pose_and_buttons_over_the_bus(leader):
    clock = Clock()
    cfg = LeaderConfig(signs=(1, -1), offsets=(0.1, 0.2))
    human = Trajectory.scripted([0.4, -0.6], [Move([0.4, -0.6], trigger=0.3, buttons=0b101, lag_s=0.0)],
                                t0=clock.t, tremor_rad=0.0)
    sim, bus = leader(human, clock, cfg)
    clock.t += 5.0
    wait_reads(bus)
    reading = LeaderOperator(bus, act_dim=3).reading()
    np.testing.assert_allclose(reading.action, [0.5, 0.8, 0.0], atol=6e-3)  # a tick: 1.5 mrad, 0.005 of the trigger
    assert reading.absolute and reading.deadman and reading.takeover and reading.e_stop and not reading.hand_back
    assert reading.t_read == clock.t and reading.age_s == 0.0
    assert sim.bad == 0 and sim.requests >= 2 * bus.reads  # (a read timed out on a busy machine is retried)


def test_a_silent_bus_is_a_lost_device(leader):
    clock = Clock()
    sim, bus = leader(Trajectory.scripted([0.0, 0.0], []), clock)
    op = LeaderOperator(bus, act_dim=3)
    assert op.present()
    sim.go_silent()
    errors = bus.errors
    while bus.errors < errors + 2:  # reads now time out
        time.sleep(0.001)
    assert op.present()  # the last whole read is still recent on the station's clock
    clock.t += LeaderConfig().lost_after_s + 0.01
    assert not op.present() and "did not answer" in bus.last_error


def test_a_closed_port_is_a_lost_device(leader):
    sim, bus = leader(Trajectory.scripted([0.0, 0.0], []), Clock())
    sim.close()
    while not bus.failed:
        time.sleep(0.001)
    assert not LeaderOperator(bus, act_dim=3).present()


def test_a_leader_that_never_answers_fails_to_open_saying_what():
    sim = SimLeader(LeaderConfig(), Trajectory.scripted([0.0, 0.0], []), Clock())
    try:
        sim.go_silent()
        with pytest.raises(OSError, match=r"no whole read of servos \[1, 2, 3\] and board 100"):
            LeaderBus.open(replace(LeaderConfig(), port=sim.port), first_read_s=0.1)
    finally:
        sim.close()


def test_the_task_and_the_leader_must_agree_on_the_action_dims(leader):
    _, bus = leader(Trajectory.scripted([0.0, 0.0], []), Clock())
    with pytest.raises(ValueError, match="make 3 action dims; the task has 2"):
        LeaderOperator(bus, act_dim=2)


# ---- align, then ramp ----

def pose(action, t, deadman=True):
    return {"action": list(action), "deadman": deadman, "takeover": deadman, "t_report": t, "absolute": True}


def test_a_pose_takes_over_only_once_aligned_then_ramps():
    safety = SafetyConfig(align_tolerance=0.1, ramp_s=0.2)
    link = RemoteOperator(0, safety, act_dim=3, offered_at=0.0)
    follower = np.array([0.3, -0.5, -1.0])
    far = follower + [1.5, -1.2, 0.0]
    commands, gaps = [], []
    for k in range(120):  # the leader moves to the follower (minimum jerk, 1 s), then on to a goal
        t = 0.01 * k
        tau = min(1.0, t)
        s = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        leader = far + s * (follower - far) + (0.2 if t > 1.0 else 0.0) * (t - 1.0) * np.array([1, 1, 0])
        link.push(pose(leader, t))
        cmd = link.drive(follower if not commands else commands[-1], t)
        assert not cmd.stop
        gaps.append(None if link.align_gap is None else np.abs(link.align_gap).max())
        if cmd.action is None:
            assert not commands  # it never lets go once it took over
            continue
        commands.append(cmd.action)
    assert gaps[0] == pytest.approx(1.5)
    held = sum(g is not None for g in gaps)
    assert 40 < held < 100 and all(g is None for g in gaps[held:])
    commands = np.array(commands)
    np.testing.assert_allclose(commands[0], follower)  # the first command is where the follower was
    assert np.abs(np.diff(commands, axis=0)).max() < 0.05  # no jump (the leader started 1.5 rad away)


def test_without_the_deadman_a_pose_is_only_shown_and_a_relative_device_is_unchanged():
    link = RemoteOperator(0, SafetyConfig(), act_dim=2)
    link.push(pose([1.0, 0.0], 0.0, deadman=False))
    assert link.drive(np.zeros(2), 0.0).action is None and link.align_gap is not None
    relative = RemoteOperator(0, SafetyConfig(ramp_s=0.0), act_dim=2)
    relative.push({"action": [1.0, 0.0], "deadman": True, "t_report": 0.0})
    np.testing.assert_allclose(relative.drive(np.zeros(2), 0.0).action, [1.0, 0.0])


def test_a_pose_never_aligned_goes_back_to_the_queue():
    link = RemoteOperator(0, SafetyConfig(claim_timeout_s=10.0), act_dim=2, offered_at=0.0)
    link.push(pose([1.0, 0.0], 9.0))
    assert link.drive(np.zeros(2), 9.0).stop == ""
    link.push(pose([1.0, 0.0], 10.5))
    assert link.drive(np.zeros(2), 10.5).stop == "not_claimed"


# ---- the leader arm drives reacher-joint ----

def test_the_leader_arm_drives_the_joint_task_with_align_then_ramp(tmp_path, leader):
    dt = 0.02
    cfg = load_config(None, ["task=reacher-joint", "robots=1", "demos=1", "learner.pretrain_updates=10",
                             "gate.threshold=1e9", "safety.ramp_s=0.2", "safety.align_tolerance=0.1"])
    clock = Clock()
    buffer = LocalEndpoint(BufferWorker(tmp_path / "segments"))
    robot = OneRobot(0, cfg, buffer, clock=clock)
    learner = Learner(cfg, robot.robot.obs_dim, robot.robot.act_dim, buffer)
    learner.publish()
    robot.set_weights(learner.latest()[1])
    for _ in range(6):  # the policy drives a few steps, then asks for help
        robot.tick()
        clock.t += dt
    assert robot.state is State.AUTONOMOUS and robot.total_steps >= 3
    robot.gate.threshold = 0.0
    robot.tick()
    assert robot.state is State.WAITING
    robot.assign(0, True)
    robot.poll()

    # the person: starts 1+ rad off, matches the follower's pose, reaches for the target, squeezes the trigger
    lc, task = cfg.leader, robot.robot.task
    follower = robot.ctl.last_action.copy()
    goal = lc.to_leader(task.goal_joints())
    human = Trajectory.scripted(lc.to_leader(follower[:2]) + [1.2, -1.0], [
        Move(lc.to_leader(follower[:2]), trigger=lc.trigger_for(follower[2])),
        Move(goal, trigger=lc.gripper_open, lag_s=0.3),
        Move(goal, trigger=lc.gripper_closed, lag_s=0.2, duration_s=0.2)], t0=clock.t, seed=3)
    _, bus = leader(human, clock, lc)
    station = OperatorStation({0: LeaderOperator(bus, act_dim=3)}, lambda r, reading: robot.operator_input(reading),
                              lambda r, op: robot.operator_lost(op), lambda events: None, clock=clock)
    station.assign(0, 0)

    commands, gaps, steps = [], [], robot.total_steps
    for _ in range(400):
        clock.t += dt
        wait_reads(bus)
        station.tick()
        robot.tick()
        if robot.state is not State.OPERATOR:
            break
        gaps.append(robot.ctl.operator.align_gap)
        commands.append(robot.last_action.copy())
        if len(gaps) == 1:  # the consoles' words for it come from the robot's status
            status = robot.ctl.status(0)
            assert status["align_gap"] == pytest.approx(np.abs(gaps[0]).max(), abs=1e-3)
            assert with_operator(status, 0).startswith("operator 0: move the leader to the robot's pose (")
    events = robot.poll()["events"]
    [end] = [e for e in events if e["ev"] == "episode_end"]
    assert end["success"] and end["human_steps"] > 20
    assert [e["reason"] for e in events if e["ev"] == "handback"] == ["episode_end"]

    held = next(i for i, g in enumerate(gaps) if g is None)
    assert held > 20 and np.abs(gaps[0][:2]).max() > 1.0  # it held while the leader was far, saying how far
    assert robot.total_steps > steps
    commands = np.array(commands)
    np.testing.assert_allclose(commands[: held + 1], np.tile(follower, (held + 1, 1)))  # held, then no jump
    assert np.abs(np.diff(commands[:, :2], axis=0)).max() < 0.12  # per period: the leader's own speed, no jump
    [takeover] = [e for e in events if e["ev"] == "takeover"]
    assert takeover["latency_s"] >= held * dt - 1e-9  # from the deadman press, through aligning
