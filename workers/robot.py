"""RobotWorker: drives one robot (dagger.robots: its own simulator, or a robot agent's over the network) with its
own policy copy at the robot's rate.

Nothing inside a step waits on another process but the robot itself: commands (weights, thresholds, operator
assignments) arrive in a mailbox read between steps; segments leave through a Shipper (workers.shipping) that never
blocks; events wait in an outbox until the supervisor polls. A remote robot's observation is waited for within its
watchdog deadline; a late one holds the robot that period.

    robot = RobotWorker(0, cfg, LocalEndpoint(buffer))
    robot.set_weights(learner.latest()); robot.tick()      # or robot.start() for its own thread
"""

from __future__ import annotations

import queue
import threading
import time
from enum import StrEnum
from typing import Any

import numpy as np

from buffers.schema import POLICY, Segment
from dagger.config import RunConfig
from dagger.core import PolicyOutput, PolicyTimeout
from dagger.evaluation import episode_seed
from dagger.gates import make_gate
from dagger.policies import robot_policy
from dagger.policies.remote import RemotePolicyError
from dagger.robots import Observation, RobotLate, make_robot
from teleop_devices.remote import RemoteOperator
from teleop_devices.scripted import ScriptedOperator
from workers.shipping import Shipper
from workers.transport import Endpoint, start_loop


class State(StrEnum):
    STARTING = "starting"  # no weights yet
    AUTONOMOUS = "autonomous"
    WAITING = "waiting"  # asked for help, holding
    OPERATOR = "operator"  # a human (or scripted operator) is in control
    RESETTING = "resetting"


#: a restarted robot numbers its segments and episodes from incarnation * this, so keys stay unique
INCARNATION_STRIDE = 1_000_000


class RobotWorker:
    def __init__(self, robot_id: int, cfg: RunConfig, buffer: Endpoint, clock: Any = time.time,
                 incarnation: int = 0, budgeted: bool = False):
        self.id, self.cfg, self.clock = robot_id, cfg, clock
        self.robot = make_robot(cfg.task, cfg.robot.agents, cfg.robot.token_file, robot_id)
        self.policy = robot_policy(cfg.policy, self.robot, robot_id)
        self.served = cfg.policy.type == "remote"  # a policy server acts for this robot: it takes no weights
        self.last_out: PolicyOutput | None = None  # the policy's newest answer
        self.late = {"policy": 0, "robot": 0}  # periods in a row the policy / the robot missed its deadline (held)
        self.late_why = {"policy": "", "robot": ""}  # why, while it lasts (the console shows it)
        self.gate = make_gate(cfg.gate, seed=cfg.seed * 1000 + robot_id)
        self.period = 0.0 if self.robot.paced else self.robot.dt / cfg.robot.speed  # a paced robot keeps time
        self.inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.states: list[tuple[float, float]] = []  # (spread, safety) of robot-controlled states, for tuned gates
        self.tuned = bool(getattr(self.gate, "tuned", ()))  # the supervisor tunes this gate from them (else: none)
        self.state = State.STARTING
        self.seq = incarnation * INCARNATION_STRIDE
        self.episode = self.seq - 1
        self.obs = np.zeros(self.robot.obs_dim, np.float32)
        self.image: np.ndarray | None = None  # the policy's camera image of this state, on an image task
        self.acted = False  # this control period commanded the robot (else it holds)
        self.unrecorded = 0  # steps the robot took from a state this worker did not see (not recorded)
        self.unreported = 0  # of those, the ones no event has counted yet (the next segment's event counts them)
        # HG-DAgger: an operator watches this robot and decides when to step in
        self.watcher = self._operator(-1) if getattr(self.gate, "human_gated", False) else None
        self.steps: list[dict] = []
        self.controller = POLICY
        self.operator: ScriptedOperator | RemoteOperator | None = None
        self.last_action = np.zeros(self.robot.act_dim)
        self.operator_id = -1
        self.request: dict = {}
        self.ep_stats = {"steps": 0, "human_steps": 0, "return": 0.0}
        self.overtime_asked = False  # this episode has asked because its time runs out
        self.overtime_horizon = self.robot.horizon if self.robot.ends_on_success else 0  # a fixed-length one: never
        self.shipper = Shipper(buffer, cfg.robot.ship_every_s, clock, self._emit)
        self.total_steps = 0
        # budgeted: the run's step budget is shared out (workers.budget): no step beyond what the supervisor allows
        self.allowed: int | None = 0 if budgeted else None
        self.allow_seq = 0
        self.episodes = 0
        self.successes = 0
        self.last_spread, self.last_safety, self.last_constraint, self.last_risk = 0.0, 1.0, False, 0.0
        self.frame_every_s, self.last_frame = 0.0, 0.0
        self.frame: np.ndarray | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.failure = ""  # why the control loop died, if it did

    # ---- mailbox: called by the supervisor from any thread ----
    def set_weights(self, weights: dict) -> None:
        self.inbox.put(("weights", weights))

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """A tuned gate's thresholds (see AutoGate.observe), set fleet-wide by the supervisor."""
        self.inbox.put(("thresholds", thresholds))

    def assign(self, operator_id: int, remote: bool = False, strain: float = 1.0, switching: bool = False) -> None:
        """Gives the robot to an operator: scripted (runs here, with the operator's fatigue `strain` and
        whether it comes from another robot) or remote (readings streamed in)."""
        self.inbox.put(("assign", (operator_id, remote, strain, switching)))

    def operator_input(self, reading: dict) -> None:
        """A remote operator's newest device reading (see teleop_devices.remote)."""
        self.inbox.put(("input", reading))

    def allow(self, steps: int, seq: int) -> None:
        """This robot may take `steps` steps in all (its share of the run's budget); the newest `seq` wins."""
        self.inbox.put(("allow", (steps, seq)))

    def want_frames(self, every_s: float) -> None:
        """Render a camera frame every every_s seconds (0: stop); poll() returns the newest one."""
        self.inbox.put(("frames", every_s))

    def operator_lost(self, operator_id: int) -> None:
        """The operator's device disappeared."""
        self.inbox.put(("lost", operator_id))

    def now(self) -> float:
        """This robot's clock (the supervisor measures its offset from its own)."""
        return self.clock()

    def poll(self) -> dict:
        """Drains the outbox: events, robot-controlled states, and a status line for the dashboard."""
        with self.lock:
            events, self.events = self.events, []
            states, self.states = self.states, []
        frame, self.frame = self.frame, None
        io = self.robot.health()
        status = {"robot": self.id, "state": self.state.value, "uncertainty": self.last_spread, "risk": self.last_risk,
                  "safety": self.last_safety, "constraint": self.last_constraint,
                  "version": self.policy.version, "episode": self.episodes, "episode_steps": self.ep_stats["steps"],
                  "successes": self.successes, "steps": self.total_steps, "operator": self.operator_id,
                  "controller": self.controller, "failure": self.failure, "io": io, "unrecorded": self.unrecorded,
                  "camera_ms": io.get("camera_ms", 0.0), **self.held(),
                  "allowed": -1 if self.allowed is None else self.allowed, "allow_seq": self.allow_seq,
                  "rate": 1 / (self.robot.dt / self.cfg.robot.speed)}
        return {"events": events, "states": states, "status": status, "frame": frame}

    def spent(self) -> bool:
        """Its share of the run's step budget is used up: it holds until it is allowed more."""
        return self.allowed is not None and self.total_steps >= self.allowed

    def held(self) -> dict[str, str]:
        """What holds the robot though nobody asked it to ("held": "policy" or "robot", whichever is late; "": nothing)
        and why ("held_why": the error)."""
        late = "" if self.state is State.WAITING or self.spent() else next(  # an operator's or the budget's hold
            (what for what, why in self.late_why.items() if why), "")
        return {"held": late, "held_why": self.late_why[late] if late else ""}

    # ---- the control loop ----
    def start(self) -> None:
        """Starts the control loop in its own thread; a second call does nothing (one loop per robot, ever: a
        robot restarted before the fleet starts is started twice)."""
        if self.thread is not None:
            return
        self.thread = start_loop(self.run, f"robot-{self.id}", self.loop_failed)

    def loop_failed(self, error: str) -> None:
        """The control loop died: the robot stops where it is (no step is taken any more) and says why."""
        self.failure = error
        self._emit("loop_failed", component="robot", error=error)

    def stop(self) -> dict:
        """Stops the loop, closes the open segment and ships everything; returns a final poll."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        self._close_segment("stop")
        if self.unreported:  # taken after the last segment closed: counted all the same
            self._emit("steps_unrecorded", steps=self.unreported)
        self.robot.disconnect()
        self.shipper.flush()
        return self.poll()

    def run(self) -> None:
        next_tick = time.perf_counter()
        while not self.stopped.is_set():
            self.tick()
            next_tick += self.period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()  # behind: do not try to catch up in a burst

    def tick(self) -> None:
        """One control period: mailbox, then at most one task step, then shipping."""
        self._read_mailbox()
        self.acted = False
        spent = self.spent()
        if self.state is State.RESETTING and not spent:
            self._new_episode()
        if self.state is State.AUTONOMOUS and not spent:
            self._autonomous_step()
        elif self.state is State.OPERATOR and not spent:
            self._operator_step()
        if not self.acted:
            self._hold()
        due = self.frame_every_s > 0 and time.perf_counter() - self.last_frame >= self.frame_every_s
        if due and self.state is not State.STARTING:
            self._render()
        self.shipper.ship()

    def _render(self) -> None:
        """In the loop's thread: a GL context belongs to the thread that made it."""
        self.last_frame = time.perf_counter()
        try:
            self.frame = self.robot.render()
        except Exception as err:  # noqa: BLE001 - no GL here: the console shows no camera, the robot runs on
            self.frame_every_s = 0.0
            self._emit("render_failed", error=str(err)[:300])

    def _emit(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.events.append({"ev": kind, "t": self.clock(), "robot": self.id, **fields})

    def _read_mailbox(self) -> None:
        while True:
            try:
                kind, value = self.inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "weights" and value["version"] > self.policy.version:
                if not self.served:  # the supervisor gives a policy server its weights
                    self.policy.load(value)
                    self._emit("weights_loaded", version=self.policy.version)
                if self.state is State.STARTING:
                    self.state = State.RESETTING
            elif kind == "thresholds":
                for name in getattr(self.gate, "tuned", ()):
                    setattr(self.gate, name, float(value[name]))
            elif kind == "assign":
                self._take_over(*value)
            elif kind == "input" and isinstance(self.operator, RemoteOperator):
                self.operator.push(value)
            elif kind == "lost" and isinstance(self.operator, RemoteOperator) and value == self.operator_id:
                self.operator.device_lost()
            elif kind == "frames":
                self.frame_every_s = float(value)
            elif kind == "allow" and value[1] > self.allow_seq:  # an older allowance that came late is dropped
                self.allowed, self.allow_seq = max(self.total_steps, value[0]), value[1]

    def _operator(self, operator_id: int, strain: float = 1.0, switching: bool = False) -> ScriptedOperator:
        seed = self.cfg.seed * 7919 + self.id * 104729 + self.seq
        return ScriptedOperator(self.cfg.operator, self.robot, operator_id, seed, self.robot.dt, strain, switching)

    def _new_episode(self) -> None:
        try:
            self._see(self.robot.reset(seed=episode_seed(self.cfg.seed, self.id, self.episode + 1)))
        except RobotLate as err:
            self._late("robot", err)
            return  # tried again next period
        self._on_time("robot")
        self.episode += 1
        self.episodes += 1
        self.policy.reset()
        self.last_out = None
        self.ep_stats = {"steps": 0, "human_steps": 0, "return": 0.0}
        self.overtime_asked = False
        self.state = State.AUTONOMOUS

    def _see(self, obs: Observation) -> None:
        self.obs, self.image = obs.obs, obs.image

    def _hold(self) -> None:
        """A period without a command: the robot holds (a paced robot's observation keeps the loop's time)."""
        self.robot.hold()
        if self.state is State.STARTING and not self.robot.paced:
            return
        try:
            obs = self.robot.get_observation()
        except RobotLate:
            return  # counted by the robot; nothing moved on this side
        if self.state is State.STARTING:
            return
        self._see(obs)
        if obs.done and self.state is not State.RESETTING:  # a late or repeated command ended the episode
            self._end_episode(obs)

    def _late(self, what: str, err: Exception) -> None:
        """The policy or the robot missed its deadline: the robot holds; the first period of a run is an event."""
        self.late[what] += 1
        if self.late[what] == 1:
            self.late_why[what] = str(err)[:300]
            self._emit(f"{what}_late", error=self.late_why[what])

    def _on_time(self, what: str) -> None:
        if self.late[what]:
            self._emit(f"{what}_back", held_steps=self.late[what])
            self.late[what], self.late_why[what] = 0, ""

    def _consult(self) -> PolicyOutput | None:
        """The policy's answer in this state; None when a served policy missed its deadline (the robot holds)."""
        try:
            out = self.policy.act(self.obs, self.image)
        except (PolicyTimeout, RemotePolicyError) as err:  # no answer, or none a robot may move on
            self._late("policy", err)
            return None
        self._on_time("policy")
        self.last_out = out
        self.last_spread, self.last_safety, self.last_risk = out.spread, out.safety, out.risk
        return out

    def _autonomous_step(self) -> None:
        out = self._consult()
        if out is None:
            return  # no answer in time: hold, ask again next step
        if self.watcher is not None and self.watcher.wants_takeover(out.action):
            self._ask_for_help(out, "human")
        elif not self.overtime_asked and self.gate.overtime(int(self.ep_stats["steps"]), self.overtime_horizon):
            self.overtime_asked = True
            self._ask_for_help(out, "overtime")
        elif self.gate.should_request_help(out, self.robot.expert_action() if self.gate.needs_expert else None):
            self._ask_for_help(out, self.gate.name)
        else:
            self._observed(out)
            self._step(out.action, out)

    def _observed(self, out: PolicyOutput) -> None:
        if self.tuned:
            with self.lock:
                self.states.append((out.spread, out.safety))

    def _ask_for_help(self, out: PolicyOutput, reason: str) -> None:
        self._observed(out)
        self._close_segment("takeover")
        self._wait_for_operator(out, reason)

    def _wait_for_operator(self, out: PolicyOutput, reason: str) -> None:
        """Hold and queue for an operator."""
        self.state = State.WAITING
        self.request = {"t": self.clock(), "reason": reason}
        self._emit("help_requested", reason=reason, score=out.spread, threshold=self.gate.threshold,
                   safety=out.safety, p_safe=out.p_safe)

    def _take_over(self, operator_id: int, remote: bool = False, strain: float = 1.0, switching: bool = False) -> None:
        if self.state is not State.WAITING:
            self._emit("assign_refused", operator=operator_id, state=self.state.value)
            return
        self.operator = (RemoteOperator(operator_id, self.cfg.safety, self.robot.act_dim, self.clock()) if remote
                         else self._operator(operator_id, strain, switching))
        self.operator_id = operator_id
        self.state = State.OPERATOR
        self.request["assigned"] = self.clock()

    def _operator_step(self) -> None:
        assert self.operator is not None
        fresh = self._consult()
        out = fresh or self.last_out  # a late served policy: the operator drives on, nothing is handed back
        if out is None:
            return
        now = self.clock()
        if isinstance(self.operator, RemoteOperator):
            reading = self.operator.read(now)
            reason = self.operator.stop_reason(reading, now)
            if reason is not None:
                self._stop_and_requeue(reason, out)
                return
            if reading.action is None or not reading.deadman:
                return  # the operator has not taken over yet: hold
            if self.operator.new_mark(reading):
                self._emit("episode_marked", operator=self.operator_id, episode=self.episode, mark=reading.mark)
            action = self.operator.command(reading.action, self.last_action, now)
            t_input = self.operator.t_input if self.operator.t_input is not None else now
        else:
            reading = self.operator.read()
            if reading.action is None:
                return  # the operator has not reacted yet: hold
            action, t_input = reading.action, now
        if self.controller == POLICY:
            self.controller = f"operator:{self.operator_id}"
            gated = "human" if self.request["reason"] == "human" else "robot"
            self._emit("takeover", operator=self.operator_id, gated=gated, reason=self.request["reason"],
                       wait_s=now - self.request["t"], latency_s=now - t_input,
                       reaction_s=max(0.0, t_input - self.request.get("assigned", self.request["t"])))
        done = self._step(action, out)
        if not done and (reading.hand_back or (fresh is not None and self.gate.should_hand_back(reading.action, out))):
            self._hand_back("released")

    def _stop_and_requeue(self, reason: str, out: PolicyOutput) -> None:
        """Safety stop: hold, free the operator, and ask again (never fall back to the policy)."""
        self._release_operator(reason, segment_reason=reason)
        self._wait_for_operator(out, reason)

    def _hand_back(self, reason: str) -> None:
        self._release_operator(reason, segment_reason="handback")
        self.state = State.AUTONOMOUS

    def _release_operator(self, reason: str, segment_reason: str) -> None:
        """Closes the operator's segment and frees the operator (the supervisor sees the handback)."""
        self._close_segment(segment_reason)
        self._emit("handback", operator=self.operator_id, reason=reason)
        self.operator, self.operator_id, self.controller = None, -1, POLICY

    def _step(self, action: np.ndarray, out: PolicyOutput) -> bool:
        """Commands the robot for one period and records the step; False when the robot did not answer in time."""
        self.acted = True
        try:
            executed = self.robot.send_action(action)
            res = self.robot.get_observation()
        except RobotLate as err:
            self._late("robot", err)
            self.acted = False  # this period holds; its observation catches up with the robot
            return False
        self._on_time("robot")
        self.last_action, self.last_constraint = executed, bool(res.constraint)
        if res.fresh:
            self.steps.append({
                "obs": self.obs, "action": self.last_action, "policy_action": out.action,
                "version": self.policy.version, "spread": out.spread, "threshold": self.gate.threshold,
                "reward": res.reward, "success": res.success, "constraint": res.constraint, "done": res.done,
                "step": self.ep_stats["steps"], "t_wall": self.clock(),
                **({} if self.image is None else {"image": self.image}),
            })
        else:  # executed from a state this worker did not see (its command came late): not a sample
            self.unrecorded += 1
            self.unreported += 1
        self._see(res)
        self.total_steps += 1
        self.ep_stats["steps"] += 1
        self.ep_stats["human_steps"] += self.controller != POLICY
        self.ep_stats["return"] += res.reward
        if res.done:
            self._end_episode(res)
        elif len(self.steps) >= self.cfg.robot.segment_max_steps:
            self._close_segment("size")
        return res.done

    def _end_episode(self, res: Observation) -> None:
        if self.steps:  # the last recorded step ends it (a step the robot took after it may have ended it)
            self.steps[-1]["done"] = True
        self._close_segment("episode_end")
        self.successes += res.success
        camera_ms = self.robot.health().get("camera_ms", 0.0)
        camera = {"camera_ms": camera_ms} if self.robot.image_shape is not None else {}  # per step, image tasks
        self._emit("episode_end", episode=self.episode, success=bool(res.success), **self.ep_stats, **camera)
        if self.operator is not None:
            self._release_operator("episode_end", segment_reason="episode_end")  # the segment is already closed
        self.state = State.RESETTING

    def _close_segment(self, reason: str) -> None:
        if not self.steps:
            return
        seg = Segment.from_steps(self.id, self.seq, self.episode, self.controller, reason, self.clock(), self.steps)
        self.seq += 1
        self.steps = []
        with self.lock:  # the steps taken but not recorded since the last segment are counted with this one
            self.events.append({**seg.event(), "t": self.clock(), "unrecorded": self.unreported})
        self.unreported = 0
        self.shipper.add(seg)
