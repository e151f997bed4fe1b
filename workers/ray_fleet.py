"""The same components as Ray actors: one process each, talking through RayEndpoint.

    init_ray(address="")                      # embedded local Ray, or join a cluster
    summary = run_loop(cfg, run_dir, make_fleet=RayFleet)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import ray
import torch
from ray._private import ray_constants
from ray._private.authentication.authentication_token_setup import _enable_token_auth

from dagger.config import ConfigError, RunConfig
from dagger.events import first_line
from workers.buffer import BufferWorker
from workers.evaluator import Evaluator
from workers.launch import closed, stopped
from workers.learner import Learner
from workers.robot import RobotWorker, group_members, replace_robot
from workers.roles import BufferRole, EvaluatorRole, LearnerRole, RobotRole
from workers.shipping import FLUSH_S
from workers.transport import DEADLINE_S, Endpoint, Late, settled

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

RESTARTS = 5
"""how often Ray restarts a crashed buffer or learner actor within one run"""
RESTART_S = 120.0
"""the longest a replacement robot may take to start (longer: the run stops, saying why)"""


LOOPBACK = ("127.0.0.1", "localhost")
TOKEN_HOW = ("put the cluster's token (`ray get-auth-token` on its head prints it) in ~/.ray/auth_token, in a file "
             "named by RAY_AUTH_TOKEN_PATH, or in RAY_AUTH_TOKEN")


def init_ray(address: str = "", num_cpus: int | None = None) -> None:
    """Joins `address` (or RAY_ADDRESS) sending Ray's token; otherwise starts an embedded local Ray once, with Ray's
    token authentication (its default) and every port on loopback."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS", "")
    # Ray's one-machine mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray is imported, hence set here): the
    # node's IP is 127.0.0.1, and Ray's servers then bind it instead of all interfaces. A cluster at a loopback
    # address (another process's local Ray) is joined the same way, or Ray would look for it at the machine's IP.
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = cluster and bool(address) and address.rpartition(":")[0] not in LOOPBACK
    try:
        if address:  # the program checks it is reachable, and its token, first (check_reachable)
            if "RAY_AUTH_MODE" not in os.environ:  # else Ray sends no token to an address it is given
                _enable_token_auth()
            try:
                ray.init(address=address, log_to_driver=False)
            except ray.exceptions.AuthenticationError as err:  # e.g. no token at all, for `auto`
                raise ConnectionError(f"{first_line(err).split('. ')[0]}: {TOKEN_HOW}") from err
        else:
            # Ray starts its workers at nice 15: on a machine with other work the robots' control loops then got a
            # few per cent of a core (a 15 s run took 290 s beside two busy processes). Robots, learner and buffer
            # run at normal priority; the evaluator lowers its own (eval.nice).
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raises ConnectionError at once for an address that is not one, a host:port nothing listens on (Ray
    would retry for 20 s and print its own RPC errors), or a cluster this process may not join: one that wants a
    token this process lacks, or one without token authentication unless RAY_AUTH_MODE=disabled says to join it
    (then it warns). "" (a local Ray), auto and ray:// are left to Ray."""
    if not address or address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(f"{address!r} is not a Ray address (host:port, auto or ray://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {address} ({err.strerror or err})") from err
    is_open, has_token, accepted = auth_probe(address, 2 * timeout_s)
    disabled = os.environ.get("RAY_AUTH_MODE") == "disabled"
    if is_open and not disabled:
        raise ConnectionError(f"the cluster at {address} runs without token authentication (anyone who reaches it "
                              "can run code on it): restart it with RAY_AUTH_MODE=token, or set RAY_AUTH_MODE=disabled "
                              "to join it anyway")
    if is_open:
        print(f"dagger: warning: joining {address} without token authentication (RAY_AUTH_MODE=disabled)",
              file=sys.stderr)
    elif disabled:
        raise ConnectionError(f"the cluster at {address} wants its token, and RAY_AUTH_MODE=disabled sends none: "
                              "unset RAY_AUTH_MODE")
    elif not has_token:
        raise ConnectionError(f"the cluster at {address} wants its token, and this process has none: {TOKEN_HOW}")
    elif not accepted:
        raise ConnectionError(f"the cluster at {address} refused this process's token: {TOKEN_HOW}")


AUTH_PROBE = """
import json, os, sys
from ray._raylet import AuthenticationTokenLoader, Config, GcsClient
from ray.exceptions import AuthenticationError

def answers(mode):
    os.environ["RAY_AUTH_MODE"] = mode
    Config.initialize("")
    try:
        GcsClient(address=sys.argv[1])
    except AuthenticationError:
        return False
    return True

token = AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)
print(json.dumps([answers("disabled"), token, token and answers("token")]))
"""
"""Asks a Ray head once without a token and once with this process's (Ray's token mode is per process, hence a
process of its own; Ray's client would also crash in token mode without a token)"""


def auth_probe(address: str, timeout_s: float) -> tuple[bool, bool, bool]:
    """(the cluster answers without a token, this process has one, the cluster accepts it); no answer within
    timeout_s: not a Ray head."""
    try:
        probe = subprocess.run([sys.executable, "-c", AUTH_PROBE, address], capture_output=True, text=True,
                               timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise ConnectionError(f"{address} answers, but not as a Ray cluster (no Ray reply in {timeout_s:g} s)") from err
    if probe.returncode != 0:
        raise ConnectionError(f"{address}: {(probe.stderr.strip().splitlines() or ['no Ray reply'])[-1]}")
    is_open, has_token, accepted = json.loads(probe.stdout.splitlines()[-1])
    return is_open, has_token, accepted


def on_node(label: str) -> dict[str, Any]:
    """Actor options that pin it to the nodes carrying a node label ("key=value"; "": any node)."""
    key, _, value = label.partition("=")
    return {"label_selector": {key: value}} if label else {}


def check_labels(cfg: RunConfig) -> None:
    """A pinning label that no live node carries is an error now, not an actor that waits for a node forever."""
    nodes = [n.get("Labels", {}) for n in ray.nodes() if n["Alive"]]
    for key, label in (("robot.node_label", cfg.robot.node_label), ("learner.node_label", cfg.learner.node_label)):
        name, _, value = label.partition("=")
        if label and not any(labels.get(name) == value for labels in nodes):
            raise ConfigError(f"config: {key!r} is {label!r}, which no node of the Ray cluster carries (start one "
                              f"with `ray start --labels {label}`)")


def placed(role: str, **fields: Any) -> dict:
    """The event saying where this actor runs: its Ray node's id and IP."""
    return {"ev": "placed", "t": time.time(), "role": role, **fields,
            "node": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}


class RayPending(Generic[T]):
    def __init__(self, ref: ray.ObjectRef):
        self.ref = ref

    def ready(self) -> bool:
        done, _ = ray.wait([self.ref], timeout=0)
        return bool(done)

    def result(self, timeout: float | None = None) -> T:
        try:
            return ray.get(self.ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError as err:
            raise Late(f"no answer within {timeout:g} s") from err


class RayEndpoint(Generic[R]):
    """Calls an actor's method (the one named as a role's, workers.roles) with .remote(); the call never blocks the
    caller."""

    transient: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError,  # a restarting actor
                                                  ray.exceptions.ActorUnavailableError)

    def __init__(self, handle: Any):
        self.handle = handle

    def call(self, method: Callable[Concatenate[R, P], T], *args: P.args, **kwargs: P.kwargs) -> RayPending[T]:
        return RayPending(getattr(self.handle, method.__name__).remote(*args, **kwargs))


class RayLearner(Learner):
    """Publishes each weights version once into the object store; robots fetch it by reference. Restarted by Ray
    after a crash, it continues from the newest checkpoint."""

    def __init__(self, cfg: RunConfig, obs_dim: int, act_dim: int, buffer_name: str, checkpoints: Path):
        torch.set_num_threads(1)
        # The buffer by name, not by handle: an actor handle among a restartable actor's arguments is kept in the
        # object store, which Ray cannot promise to still hold at a restart (ray-project/ray#53727).
        super().__init__(cfg, obs_dim, act_dim, RayEndpoint(ray.get_actor(buffer_name)), checkpoints=checkpoints)
        if ray.get_runtime_context().was_current_actor_reconstructed:  # Ray restarted this actor after a crash
            self.resume_after_crash()
        self.published_ref = ray.put(self.published)
        self.events.append(placed("learner"))

    def publish(self) -> int:
        version = super().publish()
        self.published_ref = ray.put(self.published)
        return version

    def latest(self) -> tuple[int, Any]:
        return self.published["version"], self.published_ref


class RayBuffer(BufferWorker):
    def __init__(self, *args: Any):
        super().__init__(*args)
        self.events.append(placed("buffer"))


class RayEvaluator(Evaluator):
    """Its own process at nice `eval.nice` (see workers.evaluator)."""

    def __init__(self, cfg: RunConfig):
        torch.set_num_threads(1)
        super().__init__(cfg, background=True)
        self.events.append(placed("evaluator"))


class RayRobot(RobotWorker):
    def __init__(self, *args: Any, **kwargs: Any):
        torch.set_num_threads(1)
        super().__init__(*args, **kwargs)
        self.events.extend(placed("robot", robot=robot) for robot in self.ids)


# num_cpus=0: actors are scheduled by their own loops' rates, not by Ray's CPU accounting.
_actor = ray.remote(num_cpus=0, max_concurrency=4)  # type: ignore[call-overload]
# The buffer and the learner hold state a run cannot lose: Ray restarts them, the buffer replays its log and the
# learner restores its newest checkpoint. Robots are replaced by the supervisor instead (restart_group).
_restartable = ray.remote(num_cpus=0, max_concurrency=4, max_restarts=RESTARTS)  # type: ignore[call-overload]
# The buffer's adds wait for an fsync they share (group commit): more at once share each fsync (in
# benchmarks/data_path.py 16 shippers' adds ran 1.1-1.7x as fast as 4's; through Ray, 1.2x), and the learner's
# batches and the supervisor's polls do not queue behind adds that wait on the disk.
BUFFER_CONCURRENCY = 16
_buffer_actor = ray.remote(num_cpus=0, max_concurrency=BUFFER_CONCURRENCY,  # type: ignore[call-overload]
                           max_restarts=RESTARTS)


class RayFleet:
    """Robots on the nodes `robot.node_label` names, the learner and the buffer on those `learner.node_label` names."""

    def __init__(self, cfg: RunConfig, run_dir: Path, obs_dim: int, act_dim: int, incarnation: int = 0):
        self.cfg, self.clock = cfg, time.time
        check_labels(cfg)
        buffer_name = f"dagger-buffer-{uuid.uuid4().hex}"  # unique on a cluster that other runs share
        buffer = _buffer_actor(RayBuffer).options(name=buffer_name, **on_node(cfg.learner.node_label)).remote(
            str(run_dir / "segments"), cfg.learner.human_fraction, cfg.seed, time.time, cfg.learner.label_window)
        self.buffer: Endpoint[BufferRole] = RayEndpoint(buffer)
        self.learner_handle = _restartable(RayLearner).options(**on_node(cfg.learner.node_label)).remote(
            cfg, obs_dim, act_dim, buffer_name, run_dir / "checkpoints")
        self.learner: Endpoint[LearnerRole] = RayEndpoint(self.learner_handle)
        self.members = group_members(cfg.robots, cfg.robot.per_actor, int(ray.cluster_resources().get("CPU", 1)))
        self.incarnations = [incarnation] * cfg.robots
        self.robot_handles = [self.new_group(group) for group in range(len(self.members))]
        self.groups: list[Endpoint[RobotRole]] = [RayEndpoint(h) for h in self.robot_handles]
        self.evaluator_handle = _actor(RayEvaluator).remote(cfg)
        self.evaluator: Endpoint[EvaluatorRole] = RayEndpoint(self.evaluator_handle)

    def new_group(self, group: int) -> Any:
        ids = self.members[group]
        return _actor(RayRobot).options(**on_node(self.cfg.robot.node_label)).remote(
            ids[0], self.cfg, self.buffer, incarnation=[self.incarnations[r] for r in ids],
            budgeted=self.cfg.minutes == 0, count=len(ids))

    def start(self) -> None:
        for started in [g.call(RobotRole.start) for g in self.groups]:
            started.result(RESTART_S)
        settled(self.learner, LearnerRole.start)

    def between(self) -> None:
        pass

    def fetch(self, published: Any) -> dict:
        return ray.get(published, timeout=5 * DEADLINE_S) if isinstance(published, ray.ObjectRef) else published

    def replace_robot(self, robot: int) -> None:
        replace_robot(self.groups, self.members, self.incarnations, robot)

    def kill_hung(self, component: Endpoint[Any]) -> None:
        """SIGKILLs the hung actor's process; Ray restarts it (RESTARTS times per run) as after a crash."""
        if not isinstance(component, RayEndpoint) or component not in (self.buffer, self.learner):
            raise RuntimeError("only the learner and the buffer are restarted")
        ray.kill(component.handle, no_restart=False)

    def restart_group(self, group: int) -> Endpoint[RobotRole]:
        """A fresh actor in place of a dead one; its robots' segment keys cannot collide with the old ones'."""
        for robot in self.members[group]:
            self.incarnations[robot] += 1
        ray.kill(self.robot_handles[group], no_restart=True)
        end = time.monotonic() + RESTART_S
        while True:  # a node that just died may still count as alive: a group placed there dies, and is placed again
            handle = self.new_group(group)
            try:
                ray.get(handle.start.remote(), timeout=max(1.0, end - time.monotonic()))
                break
            except ray.exceptions.RayActorError as err:
                ray.kill(handle, no_restart=True)
                if time.monotonic() >= end:
                    raise RuntimeError(f"robots {self.members[group]} could not be restarted: {first_line(err)}") \
                        from err
                time.sleep(1.0)
            except ray.exceptions.GetTimeoutError as err:  # e.g. its node died and no other carries its label
                raise RuntimeError(f"robots {self.members[group]} could not be restarted within {RESTART_S:g} s (no "
                                   f"live node for them? robot.node_label={self.cfg.robot.node_label!r})") from err
        self.robot_handles[group] = handle
        self.groups[group] = RayEndpoint(handle)
        return self.groups[group]

    def stop(self) -> list[dict]:
        polls = []
        for final in [g.call(RobotRole.stop) for g in self.groups]:
            try:
                polls.extend(final.result(FLUSH_S + 5 * DEADLINE_S))
            except (ray.exceptions.RayActorError, Late):  # killed, or hung, as the run ended: its unshipped is gone
                continue
        # a learner Ray is restarting is waited for
        polls.append(stopped("learner", lambda: settled(self.learner, LearnerRole.stop), self.clock))
        polls.append(settled(self.buffer, BufferRole.poll))
        polls.append(closed(self.buffer, self.clock))
        buffer_handle = self.buffer.handle  # type: ignore[attr-defined]
        for handle in [*self.robot_handles, self.learner_handle, self.evaluator_handle, buffer_handle]:
            ray.kill(handle)
        return polls
