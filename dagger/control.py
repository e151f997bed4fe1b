"""One robot's control state machine, as pure library: consult the policy's answer, gate, ask for help and hold,
let an operator drive (ramped, under the safety rules), record steps, end episodes and close segments.

It owns no thread, mailbox or connection. Its owner (workers.robot) paces it, fetches the policy's answer for every
robot of its group in one batched call, and passes in what it needs: `emit(kind, **fields)` for events, `ship`
for closed segments, `observed(spread, safety)` for a tuned gate's states, `new_episode()` for the policy's memory of
this robot.

    ctl = RobotController(0, cfg, robot, gate, Callbacks(emit, ship, observed, new_episode), clock)
    if ctl.prepare(): answer = policy_answer(ctl.obs, ctl.image)   # an episode starts here when one is due
    ctl.act(answer)                                                # one step, or a hold
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from buffers.schema import NUDGE_PREFIX, OPERATOR_PREFIX, POLICY, Segment
from dagger.config import RunConfig
from dagger.core import Gate, PolicyOutput
from dagger.evaluation import episode_seed
from dagger.help_queue import Assignment
from dagger.robots import Observation, Robot, RobotLate
from teleop_devices.nudge import Nudge, half_range
from teleop_devices.reading import Command, OperatorLink
from teleop_devices.remote import RemoteOperator
from teleop_devices.scripted import ScriptedOperator


class State(StrEnum):
    STARTING = "starting"  # no weights yet
    AUTONOMOUS = "autonomous"
    WAITING = "waiting"  # asked for help, holding
    OPERATOR = "operator"  # a human (or scripted operator) is in control
    RESETTING = "resetting"


#: a restarted robot numbers its segments and episodes from incarnation * this, so keys stay unique
INCARNATION_STRIDE = 1_000_000


class Emit(Protocol):
    def __call__(self, kind: str, **fields: Any) -> None: ...


@dataclass
class Callbacks:
    """What a controller hands its owner: events, closed segments, a tuned gate's states, a new episode."""

    emit: Emit
    ship: Callable[[Segment], None]
    observed: Callable[[float, float], None]  # (spread, safety) of a robot-controlled state
    new_episode: Callable[[], None]  # the policy forgets this robot's last episode (queued actions, history)


class RobotController:
    def __init__(self, robot_id: int, cfg: RunConfig, robot: Robot, gate: Gate, calls: Callbacks,
                 clock: Callable[[], float], incarnation: int = 0, budgeted: bool = False):
        self.id, self.cfg, self.robot, self.gate, self.calls, self.clock = robot_id, cfg, robot, gate, calls, clock
        self.incarnation = incarnation
        self.state = State.STARTING
        self.seq = incarnation * INCARNATION_STRIDE
        self.episode = self.seq - 1
        self.obs = np.zeros(robot.obs_dim, np.float32)
        self.image: np.ndarray | None = None  # the policy's camera image of this state, on an image task
        self.last_out: PolicyOutput | None = None  # the policy's newest answer
        self.late = {"policy": 0, "robot": 0}  # periods in a row the policy / the robot missed its deadline (held)
        self.late_why = {"policy": "", "robot": ""}  # why, while it lasts (the console shows it)
        self.acted = False  # this control period commanded the robot (else it holds)
        self.unrecorded = 0  # steps the robot took from a state this controller did not see (not recorded)
        self.unreported = 0  # of those, the ones no event has counted yet (the next segment's event counts them)
        self.watcher = self.scripted(-1) if gate.human_gated else None  # HG-DAgger: an operator watches
        self.steps: list[dict] = []
        self.controller = POLICY
        self.operator: OperatorLink | None = None
        self.operator_id = -1
        self.nudge: Nudge | None = None  # nudge mode: the operator's input is a residual on the policy's action
        self.last_action = np.zeros(robot.act_dim)
        self.request: dict = {}
        self.ep_stats = {"steps": 0, "human_steps": 0, "return": 0.0}
        self.overtime_asked = False  # this episode has asked because its time runs out
        self.overtime_horizon = robot.horizon if robot.ends_on_success else 0  # a fixed-length one: never
        self.total_steps = self.episodes = self.successes = 0
        # budgeted: the run's step budget is shared out (workers.budget): no step beyond what the supervisor allows
        self.allowed: int | None = 0 if budgeted else None
        self.allow_seq = 0
        self.last_spread, self.last_safety, self.last_constraint, self.last_risk = 0.0, 1.0, False, 0.0
        self.failure = ""  # why this robot stopped for good (its simulator or robot raised), if it did
        self.storage_down = ""  # why a correction could not be kept now: the robot holds and asks nobody for help
        self.ask_again = False  # a request storage interrupted: made again when storage is back

    # ---- what the owner's mailbox delivers, between periods ----
    def weights_arrived(self, version: int, loaded: bool) -> None:
        """A newer policy version is in place (`loaded`: here; else a policy server acts): the robot may start."""
        if loaded:
            self.calls.emit("weights_loaded", version=version)
        if self.state is State.STARTING:
            self.state = State.RESETTING

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        for name in self.gate.tuned:
            if name in thresholds:  # a calibrated gate has none until its first calibration
                setattr(self.gate, name, float(thresholds[name]))

    def allow(self, steps: int, seq: int) -> None:
        """This robot may take `steps` steps in all; an older allowance that came late is dropped."""
        if seq > self.allow_seq:
            self.allowed, self.allow_seq = max(self.total_steps, steps), seq

    def operator_input(self, reading: dict) -> None:
        if self.operator is not None:
            self.operator.push(reading)

    def operator_lost(self, operator_id: int) -> None:
        if self.operator is not None and operator_id == self.operator_id:
            self.operator.device_lost()

    def assign(self, given: Assignment) -> None:
        if self.state is not State.WAITING or self.storage_down:
            self.calls.emit("assign_refused", operator=given.operator,
                            state="storage" if self.storage_down else self.state.value)
            self.ask_again = self.ask_again or self.state is State.WAITING  # its queue place went with the offer
            return
        self.operator = (RemoteOperator(given.operator, self.cfg.safety, self.robot.act_dim, self.clock())
                         if given.remote else self.scripted(given.operator, given.strain, given.switching))
        self.operator_id = given.operator
        self.nudge = self.nudging(given)
        self.state = State.OPERATOR
        self.request["assigned"] = self.clock()

    def nudging(self, given: Assignment) -> Nudge | None:
        """Nudge mode's residual for this operator; None where it takes over (takeover mode, a leader arm's poses)."""
        op = self.cfg.operator
        if op.mode != "nudge" or op.kinds[given.operator % len(op.kinds)] == "leader":
            return None
        bound = op.nudge_bound * half_range(self.robot.clip, self.robot.act_dim)
        if given.remote:
            return Nudge(bound, self.cfg.safety.ramp_s, op.nudge_to_takeover_s, relative=False)
        # a simulated operator lives in task time (its reaction time counts steps) and takes over without a ramp
        return Nudge(bound, 0.0, op.nudge_to_takeover_s / self.cfg.robot.speed, relative=True)

    def storage(self, why: str) -> None:
        """Storage failed (`why`) or is back (""). While it is away the robot holds and asks nobody for help: an
        operator driving it is released (what they corrected so far waits in the shipper, stored if storage comes
        back), and it asks again once storage is back."""
        was, self.storage_down = self.storage_down, why
        if bool(was) == bool(why):
            return
        if why:
            self.calls.emit("storage_hold", state=self.state.value, error=why)
        else:
            self.calls.emit("storage_resumed", state=self.state.value)
        if why and self.state is State.OPERATOR:
            self.release_operator("storage", segment_reason="storage")
            self.state, self.ask_again = State.WAITING, True
        elif not why and self.ask_again and self.state is State.WAITING and self.last_out is not None:
            self.ask_again = False
            self.wait_for_operator(self.last_out, "storage")

    def scripted(self, operator_id: int, strain: float = 1.0, switching: bool = False) -> ScriptedOperator:
        seed = self.cfg.seed * 7919 + self.id * 104729 + self.seq
        return ScriptedOperator(self.cfg.operator, self.robot, operator_id, seed, self.robot.dt, strain, switching)

    # ---- one control period ----
    def spent(self) -> bool:
        """Its share of the run's step budget is used up: it holds until it is allowed more."""
        return self.allowed is not None and self.total_steps >= self.allowed

    def prepare(self, may_reset: bool = True) -> bool:
        """The period's start: a new episode when one is due (and `may_reset`: else it holds this period); True when
        this period needs the policy's answer in self.obs (and self.image)."""
        self.acted = False
        if self.failure or self.spent() or self.storage_down:
            return False
        if self.state is State.RESETTING and may_reset:
            self.new_episode()
        return self.state in (State.AUTONOMOUS, State.OPERATOR)

    def act(self, answer: PolicyOutput | Exception | None) -> None:
        """The rest of the period, given the policy's answer (an exception: it had none in time): at most one step,
        else the robot holds."""
        if not self.failure and not self.spent() and not self.storage_down:
            if self.state is State.AUTONOMOUS:
                self.autonomous_step(self.consulted(answer))
            elif self.state is State.OPERATOR:
                self.operator_step(self.consulted(answer))
        if not self.acted:
            self.hold()

    def failed(self, error: str) -> None:
        """Its simulator or robot raised: it holds for good (no step is taken any more) and says why; the rest of its
        group drives on."""
        self.failure = error
        self.calls.emit("loop_failed", component="robot", error=error)
        try:
            self.robot.hold()
        except Exception:  # noqa: BLE001 - a robot that cannot even hold is replaced by the supervisor
            pass

    def consulted(self, answer: PolicyOutput | Exception | None) -> PolicyOutput | None:
        if answer is None:
            return None
        if isinstance(answer, Exception):  # no answer in time, or none a robot may move on: it holds
            self.late_for("policy", answer)
            return None
        self.on_time("policy")
        self.last_out = answer
        self.last_spread, self.last_safety, self.last_risk = answer.spread, answer.safety, answer.risk
        return answer

    def new_episode(self) -> None:
        try:
            self.see(self.robot.reset(seed=episode_seed(self.cfg.seed, self.id, self.episode + 1)))
        except RobotLate as err:
            self.late_for("robot", err)
            return  # tried again next period
        self.on_time("robot")
        self.episode += 1
        self.episodes += 1
        self.calls.new_episode()
        self.gate.new_episode()
        self.last_out = None
        self.ep_stats = {"steps": 0, "human_steps": 0, "return": 0.0}
        self.overtime_asked = False
        self.state = State.AUTONOMOUS

    def see(self, obs: Observation) -> None:
        self.obs, self.image = obs.obs, obs.image

    def hold(self) -> None:
        """A period without a command: the robot holds (a paced robot's observation keeps the loop's time)."""
        self.robot.hold()
        if self.failure or (self.state in (State.STARTING, State.RESETTING) and not self.robot.paced):
            return  # nothing to see: it has not started, or waits for its next episode
        try:
            obs = self.robot.get_observation()
        except RobotLate:
            return  # counted by the robot; nothing moved on this side
        if self.state is State.STARTING:
            return
        self.see(obs)
        if obs.done and self.state is not State.RESETTING:  # a late or repeated command ended the episode
            self.end_episode(obs)

    def late_for(self, what: str, err: Exception) -> None:
        """The policy or the robot missed its deadline: the robot holds; the first period of a run is an event."""
        self.late[what] += 1
        if self.late[what] == 1:
            self.late_why[what] = str(err)[:300]
            self.calls.emit(f"{what}_late", error=self.late_why[what])

    def on_time(self, what: str) -> None:
        if self.late[what]:
            self.calls.emit(f"{what}_back", held_steps=self.late[what])
            self.late[what], self.late_why[what] = 0, ""

    def autonomous_step(self, out: PolicyOutput | None) -> None:
        if out is None:
            return  # no answer in time: hold, ask again next step
        if self.watcher is not None and self.watcher.wants_takeover(out.action):
            self.ask_for_help(out, "human")
        elif not self.overtime_asked and self.gate.overtime(int(self.ep_stats["steps"]), self.overtime_horizon):
            self.overtime_asked = True
            self.ask_for_help(out, "overtime")
        elif self.gate.should_request_help(out, self.robot.expert_action() if self.gate.needs_expert else None):
            self.ask_for_help(out, self.gate.name)
        else:
            self.observe(out)
            self.step(out.action, out)

    def observe(self, out: PolicyOutput) -> None:
        if self.gate.tuned:
            self.calls.observed(out.spread, out.safety)

    def ask_for_help(self, out: PolicyOutput, reason: str) -> None:
        self.observe(out)
        self.close_segment("takeover")
        self.wait_for_operator(out, reason)

    def wait_for_operator(self, out: PolicyOutput, reason: str) -> None:
        """Hold and queue for an operator."""
        self.state = State.WAITING
        self.request = {"t": self.clock(), "reason": reason}
        self.calls.emit("help_requested", reason=reason, score=out.spread, threshold=self.gate.threshold,
                        safety=out.safety, p_safe=out.p_safe)

    def operator_step(self, fresh: PolicyOutput | None) -> None:
        assert self.operator is not None
        out = fresh or self.last_out  # a late served policy: the operator drives on, nothing is handed back
        if out is None:
            return
        now = self.clock()
        command: Command = self.operator.drive(self.last_action, now)
        if command.stop:
            self.stop_and_requeue(command.stop, out)
            return
        if command.action is None:
            return  # the operator has not taken over yet: hold
        if command.mark:
            self.calls.emit("episode_marked", operator=self.operator_id, episode=self.episode, mark=command.mark)
        action, label = command.action, command.label
        if self.nudge is not None and fresh is None and self.nudge.taken_over is None:
            return  # the policy's answer is late: a nudge has nothing fresh to add to, the robot holds
        if self.nudge is not None:  # the policy acts on, the operator's push added (or, pushed too long, their own)
            action = label = self.nudge.action(command, out.action, self.last_action, now)
        if self.controller == POLICY:
            self.controller = f"{NUDGE_PREFIX if self.nudge else OPERATOR_PREFIX}{self.operator_id}"
            gated = "human" if self.request["reason"] == "human" else "robot"
            self.calls.emit("takeover", operator=self.operator_id, gated=gated, reason=self.request["reason"],
                            wait_s=now - self.request["t"], latency_s=now - command.t_input,
                            reaction_s=max(0.0, command.t_input - self.request.get("assigned", self.request["t"])),
                            mode="nudge" if self.nudge else "takeover")
        if self.nudge is not None and self.nudge.escalated:
            self.escalate()
        done = self.step(action, out)
        assert label is not None
        if not done and (command.hand_back or (fresh is not None and self.gate.should_hand_back(label, out))):
            self.hand_back("released")

    def escalate(self) -> None:
        """A nudge held beyond its bound became a takeover: the nudged segment closes, the operator's own one begins."""
        self.close_segment("escalated")
        self.controller = f"{OPERATOR_PREFIX}{self.operator_id}"
        self.calls.emit("nudge_escalated", operator=self.operator_id)

    def stop_and_requeue(self, reason: str, out: PolicyOutput) -> None:
        """Safety stop: hold, free the operator, and ask again (never fall back to the policy)."""
        self.release_operator(reason, segment_reason=reason)
        self.wait_for_operator(out, reason)

    def hand_back(self, reason: str) -> None:
        self.release_operator(reason, segment_reason="handback")
        self.state = State.AUTONOMOUS

    def release_operator(self, reason: str, segment_reason: str) -> None:
        """Closes the operator's segment and frees the operator (the supervisor sees the handback)."""
        self.close_segment(segment_reason)
        self.calls.emit("handback", operator=self.operator_id, reason=reason)
        self.operator, self.operator_id, self.controller, self.nudge = None, -1, POLICY, None

    def step(self, action: np.ndarray, out: PolicyOutput) -> bool:
        """Commands the robot for one period and records the step; returns whether the episode ended."""
        self.acted = True
        try:
            executed = self.robot.send_action(action)
            res = self.robot.get_observation()
        except RobotLate as err:
            self.late_for("robot", err)
            self.acted = False  # this period holds; its observation catches up with the robot
            return False
        self.on_time("robot")
        self.last_action, self.last_constraint = executed, bool(res.constraint)
        if res.fresh:
            self.steps.append({
                "obs": self.obs, "action": self.last_action, "policy_action": out.action,
                "version": out.version, "spread": out.spread, "threshold": self.gate.threshold,
                "reward": res.reward, "success": res.success, "constraint": res.constraint, "done": res.done,
                "step": self.ep_stats["steps"], "t_wall": self.clock(),
                **({} if self.image is None else {"image": self.image}),
            })
        else:  # executed from a state this controller did not see (its command came late): not a sample
            self.unrecorded += 1
            self.unreported += 1
        self.see(res)
        self.total_steps += 1
        self.ep_stats["steps"] += 1
        self.ep_stats["human_steps"] += self.controller != POLICY
        self.ep_stats["return"] += res.reward
        if res.done:
            self.end_episode(res)
        elif len(self.steps) >= self.cfg.robot.segment_max_steps:
            self.close_segment("size")
        return res.done

    def end_episode(self, res: Observation) -> None:
        if self.steps:  # the last recorded step ends it (a step the robot took after it may have ended it)
            self.steps[-1]["done"] = True
        self.close_segment("episode_end")
        self.successes += res.success
        camera_ms = self.robot.health().get("camera_ms", 0.0)
        camera = {"camera_ms": camera_ms} if self.robot.image_shape is not None else {}  # per step, image tasks
        self.calls.emit("episode_end", episode=self.episode, success=bool(res.success), **self.ep_stats, **camera)
        if self.operator is not None:
            self.release_operator("episode_end", segment_reason="episode_end")  # the segment is already closed
        self.state = State.RESETTING

    def close_segment(self, reason: str) -> None:
        if not self.steps:
            return
        seg = Segment.from_steps(self.id, self.seq, self.episode, self.controller, reason, self.clock(), self.steps)
        self.seq += 1
        self.steps = []
        # the steps taken but not recorded since the last segment are counted with this one
        self.calls.emit("segment", **{k: v for k, v in seg.event().items() if k not in ("ev", "robot")},
                        unrecorded=self.unreported)
        self.unreported = 0
        self.calls.ship(seg)

    def finish(self) -> None:
        """The run ends: the open segment closes, and the steps no segment counted are counted."""
        self.close_segment("stop")
        if self.unreported:  # taken after the last segment closed: counted all the same
            self.calls.emit("steps_unrecorded", steps=self.unreported)
            self.unreported = 0

    def held(self) -> dict[str, str]:
        """What holds the robot though nobody asked it to ("held": "policy" or "robot", whichever is late; "": nothing)
        and why ("held_why": the error)."""
        late = "" if self.state is State.WAITING or self.spent() else next(  # an operator's or the budget's hold
            (what for what, why in self.late_why.items() if why), "")
        return {"held": late, "held_why": self.late_why[late] if late else ""}

    def status(self, version: int) -> dict[str, Any]:
        """Its line on the dashboard (`version`: the policy version its group acts with)."""
        io = self.robot.health()
        return {"robot": self.id, "incarnation": self.incarnation, "state": self.state.value,
                "uncertainty": self.last_spread, "risk": self.last_risk,
                "safety": self.last_safety, "constraint": self.last_constraint,
                "version": version, "episode": self.episodes, "episode_steps": self.ep_stats["steps"],
                "successes": self.successes, "steps": self.total_steps, "operator": self.operator_id,
                "controller": self.controller, "failure": self.failure, "io": io, "unrecorded": self.unrecorded,
                "camera_ms": io.get("camera_ms", 0.0), **self.held(), "storage_hold": self.storage_down,
                "allowed": -1 if self.allowed is None else self.allowed, "allow_seq": self.allow_seq,
                "rate": 1 / (self.robot.dt / self.cfg.robot.speed), "align_gap": self.align_gap()}

    def align_gap(self) -> float | None:
        """How far (largest dim) a leader arm's pose is from this robot's command while the robot waits for it."""
        gap = None if self.operator is None else self.operator.align_gap
        return None if gap is None else round(float(np.abs(gap).max()), 3)
