"""What each component is asked by the others: one Protocol per role, the methods that cross an Endpoint.

An endpoint call names its method by reference, so mypy checks the name, the arguments and the result:

    buffer: Endpoint[BufferRole] = LocalEndpoint(BufferWorker(run_dir / "segments"))
    keys = buffer.call(BufferRole.add, segments).result()        # list[str]
    version, weights = settled(learner, LearnerRole.latest)      # tried again while Ray restarts the learner

The worker classes (workers.robot.RobotWorker, workers.buffer.BufferWorker, workers.learner.Learner,
workers.evaluator.Evaluator) implement these; tests/test_roles.py checks that they do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from buffers.schema import Segment
from dagger.help_queue import Assignment
from workers.transport import Endpoint


class RobotRole(Protocol):
    """A worker driving a group of robots (robot.per_actor of them), as the supervisor and the fleet drive it: a
    mailbox of commands read between control periods, and a poll that drains its outbox, one entry per robot.

        group.call(RobotRole.set_weights, weights); group.call(RobotRole.assign, assignment)
        for robot in group.call(RobotRole.poll).result(): robot["status"], robot["events"]
    """

    def set_weights(self, weights: dict) -> None:
        """A published version (or, with a policy server, only its number), for every robot of the group."""

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """A tuned gate's thresholds, set fleet-wide."""

    def assign(self, given: Assignment) -> None:
        """Gives the waiting robot `given.robot` to an operator: scripted (with its fatigue) or remote (readings
        streamed)."""

    def operator_input(self, robot: int, reading: dict) -> None:
        """A remote operator's newest device reading for `robot`, with times on the robot's clock."""

    def operator_lost(self, robot: int, operator_id: int) -> None:
        """The operator's device disappeared."""

    def allow(self, robot: int, steps: int, seq: int) -> None:
        """`robot`'s share of the run's step budget; the newest `seq` wins."""

    def want_frames(self, every_s: float, helped_only: bool = False) -> None:
        """A camera frame of each robot every every_s seconds in its polls (0: none); helped_only: only of robots
        waiting for an operator or with one (what remote operators look at)."""

    def storage(self, why: str) -> None:
        """The buffer cannot keep a correction (`why`; "": it can again): every robot of the group holds and asks
        nobody for help; one an operator drives is released."""

    def replace(self, robot: int, incarnation: int) -> None:
        """A fresh controller and robot connection for a robot that failed; the rest of the group drives on."""

    def now(self) -> float:
        """The group's clock (the supervisor measures its offset from its own)."""

    def poll(self) -> list[dict]:
        """Per robot: events, robot-controlled states, a status line and the newest frame since the last poll."""

    def start(self) -> None:
        """Starts its control loop (on Ray: in its own thread)."""

    def stop(self) -> list[dict]:
        """Stops the loop, ships everything; a final poll."""


class SampleSource(Protocol):
    """What the learner draws its batches from: the run's replay buffer, or a benchmark's flat LabelBuffer.

        batch = buffer.call(SampleSource.sample, 1024).result()      # None while it holds nothing
    """

    def sample(self, count: int, horizon: int = 1, history: int = 1) -> dict[str, Any] | None:
        """count labelled steps plus the normalizer; None while the buffer is empty."""

    def sample_transitions(self, count: int) -> dict[str, Any] | None:
        """count transitions of every controller, for the critics."""

    def stats(self) -> dict[str, int]:
        """How much the buffer holds (a checkpoint records it)."""


class BufferRole(SampleSource, Protocol):
    """The replay buffer, as robots (through their shippers), the learner, the supervisor and the launcher use it.

        keys = buffer.call(BufferRole.add, segments).result()
        settled(buffer, BufferRole.close)
    """

    def add(self, segments: list[Segment]) -> list[str]:
        """Stores segments; returns their keys (human ones durable on disk first)."""

    def unreported(self, logged: list[str]) -> list[dict]:
        """`segment` events for stored segments that are not among the `logged` keys (a killed driver's)."""

    def lost(self, reported: list[dict]) -> list[dict]:
        """A `log_lost` event, or none, for what earlier runs' events report stored and the log no longer holds."""

    def poll(self) -> dict:
        """Events since the last poll and a status line."""

    def close(self) -> None:
        """Closes the durable log."""


class LearnerRole(Protocol):
    """The learner, as the launcher (start-up), the supervisor (weights, polls) and the fleet use it.

        settled(learner, LearnerRole.train, 500); settled(learner, LearnerRole.publish)
        version, weights = learner.call(LearnerRole.latest).result()
    """

    def train(self, n: int) -> float:
        """n gradient updates; the mean loss."""

    def publish(self) -> int:
        """Freezes the current weights as the next version; returns it."""

    def restore(self, ckpt: dict, trainer: bool = True) -> int:
        """Continues from a checkpoint (with `trainer`, its optimisers too); returns its version."""

    def latest(self) -> tuple[int, Any]:
        """The published version and its weights (on Ray, an object reference to them)."""

    def advance_to(self, version: int) -> None:
        """Numbers the next version after `version` (a learner restored after a crash may be behind the robots)."""

    def poll(self) -> dict:
        """Events since the last poll and a status line."""

    def start(self) -> None:
        """Starts the training loop."""

    def halt(self) -> None:
        """Stops training and publishing: the final version is fixed."""

    def stop(self) -> dict:
        """Halts, checkpoints; a final poll."""


class EvaluatorRole(Protocol):
    """The evaluator, as the supervisor uses it: a version to score when it is free, and polls for the scores.

        pending = evaluator.call(EvaluatorRole.evaluate, weights)
        events = evaluator.call(EvaluatorRole.poll).result()["events"]
    """

    def evaluate(self, weights: dict) -> int:
        """Scores one published version; returns its number."""

    def poll(self) -> dict:
        """`eval` events since the last poll."""


class Fleet(Protocol):
    """A run's components, in this process (workers.launch.LocalFleet) or as Ray actors (workers.ray_fleet.RayFleet):
    robot groups (group g drives robots members[g]), the buffer, the learner and the evaluator."""

    groups: list[Endpoint[RobotRole]]
    members: list[list[int]]
    buffer: Endpoint[BufferRole]
    learner: Endpoint[LearnerRole]
    evaluator: Endpoint[EvaluatorRole]

    @property
    def clock(self) -> Callable[[], float]: ...

    def start(self) -> None: ...

    def between(self) -> None:
        """Drives in-process components one control period (nothing on Ray)."""

    def stop(self) -> list[dict]: ...

    def fetch(self, published: Any) -> dict:
        """The weights themselves, from what the learner's `latest` hands out (on Ray, an object reference)."""

    def replace_robot(self, robot: int) -> None:
        """A fresh controller, as a new incarnation, for a robot that failed in a group that lives on."""

    def kill_hung(self, component: Endpoint[Any]) -> None:
        """Kills a learner or buffer that stopped answering, for it to be restarted as a crashed one is (RuntimeError:
        it cannot be)."""

    def restart_group(self, group: int) -> Endpoint[RobotRole]:
        """A fresh worker for a group whose worker died, each of its robots a new incarnation (RuntimeError: none)."""
