"""The invariants the README promises, each checked against hand-derived answers.

- every step records the weights version that acted (and the action is that version's);
- a batch with a human segment is fsync'd, every byte of it, before its keys are acknowledged;
- no remote call inside a control step: the robot never waits on the buffer, it calls it only to ship;
- a waiting robot holds still (no task step, no policy action, nothing recorded);
- a tuned gate's fleet-wide thresholds reach every robot;
- a learner restarted after a crash never gives a version number twice, and the report counts every update made;
- scripted demonstration steps are never exported as interventions (LeRobot, robomimic);
- run seeds stay below the evaluation seeds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from buffers.codec import decode_segment
from buffers.replay import ReplayBuffer
from buffers.schema import Segment
from buffers.segment_log import SegmentLog, file_name
from dagger.control import State
from dagger.events import EventLog, read_events
from dagger.metrics import summarize
from dagger.policies import EnsemblePolicy
from dagger.tasks import make_task
from tests.conftest import make_segment, point_config, wait_until
from tests.one_robot import OneRobot
from workers.buffer import BufferWorker
from workers.launch import LocalFleet, collect_demos
from workers.learner import Learner
from workers.roles import BufferRole
from workers.supervisor import Supervisor
from workers.transport import Late, LocalEndpoint

# ---------------------------------------------------------------- helpers


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def first_weights(cfg, buffer_worker: BufferWorker) -> dict:
    """Version 1 of a learner's weights (untrained: the buffer is empty)."""
    task = make_task(cfg.task)
    learner = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer_worker))
    assert learner.publish() == 1
    return learner.latest()[1]


def stored_segments(directory: Path) -> list[Segment]:
    """Every segment in a segment log, decoded, in (robot, seq) order."""
    return sorted((decode_segment(p) for p in SegmentLog.read(directory)), key=lambda s: (s.robot, s.seq))


@pytest.fixture
def fsyncs(monkeypatch):
    """Records (inode, size) of the file at every os.fsync (segment_log calls os.fsync at call time)."""
    calls: list[tuple[int, int]] = []
    real = os.fsync

    def recording(fd: int) -> None:
        st = os.fstat(fd)
        real(fd)
        calls.append((st.st_ino, st.st_size))

    monkeypatch.setattr(os, "fsync", recording)
    return calls


class NeverReady:
    """A pending remote call that never completes; result() must never be called on it."""

    def __init__(self, log: list[str]):
        self.log = log

    def ready(self) -> bool:
        return False

    def result(self):
        self.log.append("result")  # recorded: the robot may swallow the exception below
        raise AssertionError("the robot waited on the buffer")


class HungBuffer:
    """An endpoint whose calls are accepted and never answered (a buffer actor that hangs)."""

    transient = ()

    def __init__(self):
        self.calls: list[tuple[Callable, list[Segment]]] = []
        self.waited: list[str] = []

    def call(self, method, *args):
        self.calls.append((method, *args))
        return NeverReady(self.waited)


# ---------------------------------------------------------------- 1. the version that acted


def test_every_step_records_the_version_that_acted_and_changes_at_the_exact_tick(tmp_path):
    # 7 ticks on v1, then v2 arrives in the mailbox, 6 ticks on v2; segments of at most 4 steps,
    # so the switch falls inside the second segment: steps 1-4 | 5 6 7 (v1) 8 (v2) | 9-12 | 13.
    cfg = point_config("gate.name=never", "robot.segment_max_steps=4", "robot.ship_every_s=0")
    buffer = BufferWorker(tmp_path / "segments")
    robot = OneRobot(0, cfg, LocalEndpoint(buffer))
    w1 = first_weights(cfg, buffer)
    w2 = {**w1, "version": 2, "params": [p + np.float32(0.05) for p in w1["params"]]}
    robot.set_weights(w1)
    for _ in range(7):
        robot.tick()
    assert robot.total_steps == 7
    robot.set_weights(w2)
    for _ in range(6):
        robot.tick()
    events = robot.stop()["events"]
    buffer.close()

    segments = stored_segments(tmp_path / "segments")
    assert [len(s) for s in segments] == [4, 4, 4, 1]
    versions = np.concatenate([s.version for s in segments])
    assert versions.tolist() == [1] * 7 + [2] * 6
    assert [e["versions"] for e in events if e["ev"] == "segment"] == [
        [[1, 4]], [[1, 3], [2, 1]], [[2, 4]], [[2, 1]]]
    assert [e["version"] for e in events if e["ev"] == "weights_loaded"] == [1, 2]

    # the recorded policy action is the one that version's weights give in the recorded state
    policies = {}
    for weights in (w1, w2):
        policies[weights["version"]] = EnsemblePolicy(robot.robot.obs_dim, robot.robot.act_dim, cfg.policy)
        policies[weights["version"]].load(weights)
    obs = np.concatenate([s.obs for s in segments])
    acted = np.concatenate([s.policy_action for s in segments])
    expected = np.array([policies[int(v)].act(o).action for v, o in zip(versions, obs, strict=True)])
    np.testing.assert_allclose(acted, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(policies[1].act(obs[8]).action, policies[2].act(obs[8]).action)


# ---------------------------------------------------------------- 2. fsync before acknowledgement


@pytest.mark.parametrize("order", ["policy-human", "human-policy", "policy-human-policy"])
@pytest.mark.parametrize("via", ["replay", "buffer_worker"])
def test_a_mixed_batch_is_fsyncd_whole_before_its_keys_return(tmp_path, fsyncs, order, via):
    controllers = {"policy": "policy", "human": "operator:0"}
    batch = [make_segment(i, 3 + i, controllers[c]) for i, c in enumerate(order.split("-"))]
    store = ReplayBuffer(tmp_path / "segments") if via == "replay" else BufferWorker(tmp_path / "segments")
    log_file = tmp_path / "segments" / file_name(0)
    size_before = log_file.stat().st_size
    fsyncs.clear()  # opening the log fsyncs the directory entry; that is not what is tested here
    acked = store.add(batch)
    after = log_file.stat()
    assert acked == [s.key for s in batch]
    assert after.st_size > size_before
    # an fsync of the log file when it already held every byte of the batch, before add() returned
    assert (after.st_ino, after.st_size) in fsyncs
    store.close()


def test_a_policy_only_batch_is_written_without_fsync(tmp_path, fsyncs):
    # The design: policy segments are not labels; only human ones pay for an fsync (README).
    with ReplayBuffer(tmp_path / "segments") as buf:
        fsyncs.clear()
        assert buf.add([make_segment(0, 4, "policy"), make_segment(1, 2, "policy")]) == ["0:0", "0:1"]
        assert fsyncs == []
        assert buf.stats()["steps"] == 6


class SyncCheckingEndpoint:
    """The real buffer; on every add() notes whether the log was fsync'd at its full size before returning."""

    transient = ()

    def __init__(self, buffer: BufferWorker, fsyncs: list[tuple[int, int]], log_file: Path):
        self.buffer, self.fsyncs, self.log_file = buffer, fsyncs, log_file
        self.adds: list[tuple[list[str], bool]] = []  # (controllers of the batch, fsync'd whole)

    def call(self, method, *args):
        pending = LocalEndpoint(self.buffer).call(method, *args)
        if method is BufferRole.add:
            st = self.log_file.stat()
            self.adds.append(([s.controller for s in args[0]], (st.st_ino, st.st_size) in self.fsyncs))
            self.fsyncs.clear()
        return pending


def test_a_robot_ships_policy_and_human_segments_together_and_the_batch_is_durable(tmp_path, fsyncs):
    # ship_every_s is long: the policy segment closed at the takeover waits in the outbox, and the
    # operator's segment, shipped at once when it closes, takes it along: one mixed batch.
    cfg = point_config("gate.name=random", "gate.rate=1.0", "operator.reaction_s=0.0",
                       "operator.correction_steps=3", "robot.ship_every_s=3600")
    buffer = BufferWorker(tmp_path / "segments")
    endpoint = SyncCheckingEndpoint(buffer, fsyncs, tmp_path / "segments" / file_name(0))
    robot = OneRobot(0, cfg, endpoint)
    robot.set_weights(first_weights(cfg, buffer))
    robot.tick()  # asks at its first state: nothing recorded yet
    assert robot.state is State.WAITING
    robot.assign(0)
    for _ in range(3):  # three operator steps, then the operator hands back; the gate asks again
        robot.tick()
    robot.tick()  # asks again at once (rate 1): still no policy step
    assert robot.state is State.WAITING
    robot.gate.config.rate = 0.0  # from now on the policy keeps control
    robot.assign(0)
    for _ in range(3):
        robot.tick()
    for _ in range(2):
        robot.tick()  # two policy steps, not shipped yet
    robot.gate.config.rate = 1.0
    robot.tick()  # asks: closes the 2-step policy segment (kept in the outbox)
    robot.assign(0)
    for _ in range(3):
        robot.tick()  # the operator segment closes and is shipped with the policy segment before it
    human_adds = [ok for controllers, ok in endpoint.adds if "operator:0" in controllers]
    assert ["policy", "operator:0"] in [c for c, _ in endpoint.adds], endpoint.adds
    assert len(human_adds) == 3 and all(human_adds), endpoint.adds
    assert not robot.shipper.unacked
    buffer.close()


# ---------------------------------------------------------------- 3. nothing blocks a control step


def test_a_robot_keeps_stepping_while_the_buffer_never_answers(tmp_path):
    # gate never: one policy step per tick; segments of 5 steps, shipped as soon as they close.
    cfg = point_config("gate.name=never", "robot.segment_max_steps=5", "robot.ship_every_s=0")
    hung = HungBuffer()
    robot = OneRobot(0, cfg, hung)
    robot.set_weights(first_weights(cfg, BufferWorker(tmp_path / "segments")))
    per_tick = []
    for _ in range(100):
        before = len(hung.calls)
        robot.tick()
        per_tick.append(len(hung.calls) - before)
    assert robot.total_steps == 100  # one task step per tick, the 100 ticks never waited
    assert hung.waited == []  # no result() on a pending that is not ready
    assert {c[0] for c in hung.calls} == {BufferRole.add}
    assert max(per_tick) == 1  # at most one add per tick, and only on ticks that close a segment
    # 40-step episodes: segments close every 5 steps and at each episode end; ticks 5, 10, ..., 100
    assert [i + 1 for i, n in enumerate(per_tick) if n] == list(range(5, 101, 5))
    in_flight = [s for _, batch, _ in robot.shipper.in_flight for s in batch]
    assert len(robot.shipper.in_flight) == 20 and sum(len(s) for s in in_flight) == 100


def test_shipping_waits_for_ship_every_s_and_never_for_the_buffer(tmp_path):
    cfg = point_config("gate.name=never", "robot.segment_max_steps=5", "robot.ship_every_s=3600")
    hung = HungBuffer()
    robot = OneRobot(0, cfg, hung)
    robot.set_weights(first_weights(cfg, BufferWorker(tmp_path / "segments")))
    for _ in range(100):
        robot.tick()
    assert robot.total_steps == 100 and hung.waited == []
    assert len(hung.calls) <= 1  # at most the very first segment; the rest wait for ship_every_s
    outbox_steps = sum(len(s) for s in robot.shipper.outbox)
    shipped = sum(len(s) for c in hung.calls for s in c[1])
    assert outbox_steps + shipped == 100


def test_human_segments_stay_with_a_robot_whose_buffer_hangs(tmp_path):
    # The operator takes over at every request (gate asks at every state), corrects 3 steps, hands back.
    cfg = point_config("gate.name=random", "gate.rate=1.0", "operator.reaction_s=0.0",
                       "operator.correction_steps=3", "robot.ship_every_s=0")
    hung = HungBuffer()
    robot = OneRobot(0, cfg, hung)
    robot.set_weights(first_weights(cfg, BufferWorker(tmp_path / "segments")))
    for _ in range(40):
        if robot.state is State.WAITING:
            robot.assign(0)
        before = len(hung.calls)
        robot.tick()
        assert len(hung.calls) - before <= 1
    # ticks: 1 asks; then per cycle: 3 operator steps (assign read at the first), 1 tick asking again
    # (rate 1, no policy step). 39 ticks after the first: 9 full cycles of 4 ticks + 3 operator steps.
    assert robot.total_steps == 9 * 3 + 3
    assert hung.waited == []
    shipped = [s for c in hung.calls for s in c[1]]
    assert [s.controller for s in shipped] == ["operator:0"] * 10
    assert sorted(robot.shipper.unacked) == sorted(s.key for s in shipped)  # none acknowledged: all kept


def test_a_waiting_robot_holds_still(tmp_path):
    cfg = point_config("gate.name=random", "gate.rate=1.0")
    robot = OneRobot(0, cfg, LocalEndpoint(BufferWorker(tmp_path / "segments")))
    acts = []
    real_act = robot.policy.policy.act_batch
    robot.policy.policy.act_batch = lambda obs, images, streams: acts.append(obs) or real_act(obs, images, streams)
    robot.set_weights(first_weights(cfg, BufferWorker(tmp_path / "other")))
    robot.tick()  # loads, starts an episode, asks for help in its first state
    assert robot.state is State.WAITING and len(acts) == 1
    pos, vel, t, obs = robot.robot.task.pos.copy(), robot.robot.task.vel.copy(), robot.robot.task.t, robot.obs.copy()
    for _ in range(50):
        robot.tick()
    assert robot.state is State.WAITING
    assert len(acts) == 1  # the policy was not asked to act while the robot waited
    assert robot.total_steps == 0 and robot.steps == [] and robot.robot.task.t == t == 0
    np.testing.assert_array_equal(robot.robot.task.pos, pos)
    np.testing.assert_array_equal(robot.robot.task.vel, vel)
    np.testing.assert_array_equal(robot.obs, obs)
    kinds = [e["ev"] for e in robot.poll()["events"]]
    assert kinds.count("help_requested") == 1 and "segment" not in kinds


def pretrained_fleet(cfg, tmp_path):
    """An in-process fleet whose learner cloned the demonstrations and published, its event log and supervisor."""
    task = make_task(cfg.task)
    fleet = LocalFleet(cfg, tmp_path, task.obs_dim, task.act_dim)
    fleet.buffer_worker.add(collect_demos(cfg, task))
    fleet.learner_worker.train(cfg.learner.pretrain_updates)
    fleet.learner_worker.publish()
    log = EventLog(tmp_path / "events.jsonl")
    return fleet, log, Supervisor(cfg, fleet, log)


# ---------------------------------------------------------------- 4. fleet thresholds


def test_auto_gate_thresholds_reach_every_robot(tmp_path):
    prior, alpha = 1.0, 0.2
    cfg = point_config("gate.name=auto", f"gate.alpha={alpha}", f"gate.threshold={prior}", "robots=3",
                       "operator.reaction_s=0.0", "gate.adapt=0")  # the plain quantile: hand-computable below
    fleet, log, supervisor = pretrained_fleet(cfg, tmp_path)
    seen: list[tuple[float, float]] = []  # every robot-controlled state the supervisor was given
    handle = supervisor.handle
    supervisor.handle = lambda result: (seen.extend(result["states"]), handle(result))[1]
    supervisor.poll()
    for _ in range(120):
        fleet.between()
        supervisor.poll()
    fleet.between()  # each robot reads its mailbox first thing in its tick
    log.close()

    assert len(seen) >= cfg.gate.min_states
    expected = float(np.quantile(np.array(seen[-cfg.gate.window:])[:, 0], 1 - alpha))
    assert supervisor.fleet_gate is not None
    assert supervisor.fleet_gate.threshold == pytest.approx(expected, rel=1e-12)
    assert expected != prior
    for robot in fleet.robot_workers:
        assert robot.controllers[robot.ids[0]].gate.threshold == supervisor.fleet_gate.threshold, f"robot {robot.ids}"
    assert {e["robot"] for e in [*supervisor.status["robots"].values()]} == {0, 1, 2}
    fleet.stop()


@pytest.mark.parametrize(("gate", "sent"), [("auto", True), ("never", False)])
def test_a_robot_sends_its_states_only_for_a_gate_the_supervisor_tunes(tmp_path, gate, sent):
    cfg = point_config(f"gate.name={gate}", "gate.threshold=1000000.0", "robot.ship_every_s=0")
    buffer = BufferWorker(tmp_path / "segments")
    robot = OneRobot(0, cfg, LocalEndpoint(buffer))
    robot.set_weights(first_weights(cfg, buffer))
    for _ in range(5):  # the first tick reads the weights, starts the episode and steps
        robot.tick()
    states = robot.poll()["states"]
    buffer.close()
    assert robot.total_steps == 5
    assert len(states) == (5 if sent else 0)


# ---------------------------------------------------------------- 5. a learner restarted after a crash


def crash_and_restart(fleet: LocalFleet, supervisor: Supervisor, run_dir: Path) -> Learner:
    """The fleet's learner dies (its unpolled events with it) and a new process takes its place as Ray's restart
    does: a Learner on the same checkpoint dir that runs resume_after_crash (its training is the fleet's, stepped)."""
    old = fleet.learner_worker
    task = make_task(fleet.cfg.task)
    new = Learner(fleet.cfg, task.obs_dim, task.act_dim, fleet.buffer, fleet.clock, run_dir / "checkpoints")
    new.start = lambda: None  # type: ignore[method-assign]  # LocalFleet.between trains it, as it trained `old`
    new.resume_after_crash()
    fleet.learner_worker, fleet.learner = new, LocalEndpoint(new)
    supervisor.learner = fleet.learner
    old.events.clear()
    return new


def test_weight_versions_never_repeat_after_a_learner_restart(tmp_path):
    # checkpoints at every 2nd version; the learner dies when its newest version (logged and sent to the robots) is
    # odd, so the checkpoint it restores is a version behind: numbering on from the checkpoint would repeat one
    cfg = point_config("gate.name=never", "learner.checkpoint_every=2", "learner.publish_every=20",
                       "learner.pretrain_updates=20", "eval.every_versions=0", "learner.batch_size=16")
    fleet, log, supervisor = pretrained_fleet(cfg, tmp_path)
    supervisor.poll()
    while not (fleet.learner_worker.published["version"] >= 5 and fleet.learner_worker.published["version"] % 2
               and supervisor.weights.sent_version == fleet.learner_worker.published["version"]):
        fleet.between()
        supervisor.poll()
    before = supervisor.weights.sent_version
    new = crash_and_restart(fleet, supervisor, tmp_path)
    assert new.latest()[0] == before - 1  # restored the checkpoint a version behind what the robots run
    supervisor.poll()  # reads `restarted`: the learner numbers on after what the robots run
    while new.latest()[0] < before + 3:
        fleet.between()
        supervisor.poll()
    fleet.stop()
    log.close()
    events = read_events(tmp_path / "events.jsonl")
    published = [e["version"] for e in events if e["ev"] == "weights_published"]
    assert len(published) == len(set(published)), f"a version number was given twice: {published}"
    assert published == sorted(published) and published[-1] >= before + 3
    for robot in range(cfg.robots):  # each robot took each number once, in order
        loaded = [e["version"] for e in events if e["ev"] == "weights_loaded" and e["robot"] == robot]
        assert len(loaded) == len(set(loaded)) and loaded == sorted(loaded) and loaded[-1] > before


def test_learner_updates_are_every_update_each_learner_process_made(tmp_path):
    # a learner trains 30 updates, publishes (a checkpoint), trains 12 more and dies; its replacement restores the
    # checkpoint (30) and trains on: the report counts 42 + what the replacement added past 30
    cfg = point_config("learner.checkpoint_every=1", "learner.batch_size=16")
    task = make_task(cfg.task)
    buffer = BufferWorker(tmp_path / "segments")
    buffer.add(collect_demos(cfg, task))
    first = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer), checkpoints=tmp_path / "checkpoints")
    first.train(30)
    first.publish()
    first.train(12)
    first._emit_progress()
    events = [{"ev": "run_start", "t": 0.0}, *first.poll()["events"]]
    second = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer), checkpoints=tmp_path / "checkpoints")
    second.start = lambda: None  # type: ignore[method-assign]  # trained here, by hand
    second.resume_after_crash()
    assert second.updates == 30
    second.advance_to(first.latest()[0])
    second.train(25)
    second.publish()
    events += [*second.stop()["events"], {"ev": "run_end", "t": second.clock()}]
    buffer.close()
    assert sum(e["ev"] == "restored" for e in events) == 1
    assert summarize(events)["learner_updates"] == 42 + 25


# ---------------------------------------------------------------- 6. a buffer that blocks, with a real clock


class FuturePending:
    """A call running in another thread, as a Ray call's answer: ready() never waits; result() on a call that has not
    finished, from a robot's control loop (a thread named robots-<id>), is recorded (a wait on the buffer inside a
    control step) and raises, so a robot that would wait is seen, not hung. Elsewhere (stop()'s flush) it waits."""

    def __init__(self, future: Future, waited: list[str]):
        self.future, self.waited = future, waited

    def ready(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None):
        if not self.future.done() and threading.current_thread().name.startswith("robots-"):
            self.waited.append(threading.current_thread().name)
            raise Late("the robot waited on the buffer")
        try:
            return self.future.result(timeout)
        except TimeoutError as err:
            raise Late("not answered in time") from err


class BlockingBuffer:
    """The real buffer behind a connection: call() returns at once; add() runs in a thread of its own and begins only
    once `released` is set (a buffer held up by its disk)."""

    transient = ()

    def __init__(self, buffer: BufferWorker):
        self.buffer, self.released, self.entered = buffer, threading.Event(), threading.Event()
        self.pool = ThreadPoolExecutor(8)
        self.waited: list[str] = []

    def call(self, method, *args):
        return FuturePending(self.pool.submit(self.run, method.__name__, *args), self.waited)

    def run(self, name: str, *args):
        if name == "add":
            self.entered.set()
            self.released.wait()
        return getattr(self.buffer, name)(*args)


def test_a_robot_on_a_real_clock_steps_on_while_its_buffers_add_blocks_and_ships_when_released(tmp_path):
    cfg = point_config("gate.name=random", "gate.rate=0.2", "operator.reaction_s=0.0", "operator.correction_steps=3",
                       "robot.ship_every_s=0", "robot.speed=20.0")
    buffer = BufferWorker(tmp_path / "segments")
    blocking = BlockingBuffer(buffer)
    robot = OneRobot(0, cfg, blocking, clock=time.time)
    robot.set_weights(first_weights(cfg, buffer))
    robot.start()  # its own control loop, paced on the real clock

    def helped(check: Callable[[], bool]) -> Callable[[], bool]:
        def helping() -> bool:
            if robot.state is State.WAITING:
                robot.assign(0)  # an operator for every request (a repeat while assigned is refused, harmless)
            return check()
        return helping

    try:
        wait_until(helped(blocking.entered.is_set), 60, "the first add")
        steps, periods = robot.total_steps, robot.periods
        # the add that began is still blocked: the robot steps on, and closes the operators' segments it is given
        wait_until(helped(lambda: sum(s.human for s in robot.shipper.unacked.values()) >= 2
                          and robot.total_steps >= steps + 20 and robot.periods >= periods + 50), 60,
                   "two operators' segments and 20 steps while the buffer's add is blocked")
        assert not blocking.released.is_set() and blocking.waited == []
        assert any(s.human for _, batch, _ in robot.shipper.in_flight for s in batch)  # sent, not yet answered
        blocking.released.set()
        wait_until(lambda: not robot.shipper.unacked and not robot.shipper.in_flight, 60, "every add answered")
    finally:
        blocking.released.set()
        events = robot.stop()["events"]
        blocking.pool.shutdown()
    assert blocking.waited == [], f"{len(blocking.waited)} waits on the buffer in {set(blocking.waited)}"
    human = {f"0:{e['seq']}" for e in events if e["ev"] == "segment" and e["controller"] != "policy"}
    assert len(human) >= 2 and human == {f"0:{e['seq']}" for e in events if e["ev"] == "stored"}
    logged = {s.key for s in stored_segments(tmp_path / "segments")}
    buffer.close()
    assert human <= logged


# ---------------------------------------------------------------- 7. demonstrations are not interventions


@pytest.mark.parametrize("fmt", ["robomimic", "lerobot"])
def test_scripted_demonstration_steps_are_never_exported_as_interventions(tmp_path, fmt):
    import h5py
    import pyarrow.parquet as pq
    import yaml

    from dagger.app.cli import main

    cfg = point_config("demos=2")
    run = tmp_path / "run"
    buffer = BufferWorker(run / "segments")
    demos = collect_demos(cfg, make_task(cfg.task))  # the driver's scripted demonstrations, as a run stores them
    buffer.add([*demos, make_segment(0, 3, "policy"), make_segment(1, 2, "operator:4")])
    buffer.close()
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "point"}}))
    out = tmp_path / ("out.hdf5" if fmt == "robomimic" else "out")
    assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    if fmt == "robomimic":
        with h5py.File(out) as f:
            demo_groups = [f["data"][name] for name in f["data"]]
            controller = np.concatenate([g["controller"][()] for g in demo_groups]).astype(str)
            intervention = np.concatenate([g["intervention"][()] for g in demo_groups])
            operator = np.concatenate([g["operator"][()] for g in demo_groups])
    else:
        data = pq.read_table(out / "data/chunk-000/file-000.parquet")
        controller = np.array(data.column("controller").to_pylist())
        intervention = np.array(data.column("intervention").to_pylist())
        operator = np.array(data.column("operator").to_pylist())
    demo = controller == "demo"
    assert demo.sum() == sum(map(len, demos)) > 0
    assert not intervention[demo].any() and (operator[demo] == -1).all()  # a script, not a person, acted
    assert intervention[controller == "operator:4"].all() and (operator[controller == "operator:4"] == 4).all()
    assert intervention.sum() == 2


# ---------------------------------------------------------------- 8. training seeds below evaluation seeds


def test_run_seeds_stay_below_the_evaluation_seeds(tmp_path):
    from dagger.config import MAX_COUNT, ConfigError
    from dagger.control import INCARNATION_STRIDE
    from dagger.evaluation import EVAL_SEED_BASE, MAX_RUN_SEED, demo_seed, episode_seed, eval_seeds

    top = MAX_RUN_SEED - 1
    # the largest training seeds a run may use: the last run seed, robot and demonstration the config allows, and a
    # robot restarted 100,000 times (each run and each robot restart takes an incarnation) with a million episodes
    assert episode_seed(top, MAX_COUNT - 1, 10**5 * INCARNATION_STRIDE + 10**6) < EVAL_SEED_BASE
    assert demo_seed(top, MAX_COUNT - 1) < EVAL_SEED_BASE
    assert point_config(f"seed={top}").seed == top
    with pytest.raises(ConfigError, match="seed"):
        point_config(f"seed={MAX_RUN_SEED}")
    with pytest.raises(ValueError, match="evaluation seeds must start at"):
        eval_seeds(3, EVAL_SEED_BASE - 1)
    assert min(eval_seeds(3)) == EVAL_SEED_BASE

    # the seeds the code takes: a robot's episodes (a late incarnation) and the scripted demonstrations
    cfg = point_config(f"seed={top}", "gate.name=never", "demos=2")
    robot = OneRobot(MAX_COUNT - 1, cfg, LocalEndpoint(BufferWorker(tmp_path / "segments")), incarnation=10**5)
    seeds: list[int] = []
    reset = robot.robot.reset
    robot.robot.reset = lambda seed=None: seeds.append(seed) or reset(seed=seed)  # type: ignore[method-assign]
    robot.set_weights(first_weights(cfg, BufferWorker(tmp_path / "other")))
    for _ in range(45):  # point's episodes are 40 steps: two episodes begin
        robot.tick()
    task = make_task(cfg.task)
    task_reset = task.reset
    task.reset = lambda seed=None: seeds.append(seed) or task_reset(seed=seed)  # type: ignore[method-assign]
    collect_demos(cfg, task)
    assert len(seeds) == 4 and all(isinstance(s, int) and 0 <= s < EVAL_SEED_BASE for s in seeds), seeds
