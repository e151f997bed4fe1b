"""The same components as Ray actors: one process each, talking through RayEndpoint.

    init_ray(address="")                      # embedded local Ray, or join a cluster
    summary = run_loop(cfg, run_dir, make_fleet=RayFleet)
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import ray
import torch

from dagger.config import RunConfig
from workers.buffer import BufferWorker
from workers.evaluator import Evaluator
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.transport import Endpoint, settled

RESTARTS = 5
"""how often Ray restarts a crashed buffer or learner actor within one run"""


def init_ray(address: str = "", num_cpus: int | None = None) -> None:
    """Joins `address` (or RAY_ADDRESS); otherwise starts an embedded local Ray once."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS", "")
    if address:  # the program checks it is reachable first (check_reachable), before it writes anything
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raises ConnectionError at once for an address that is not one, or a host:port nothing listens on (Ray
    would retry for 20 s and print its own RPC errors); "" (a local Ray), auto and ray:// are left to Ray."""
    if not address or address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(f"{address!r} is not a Ray address (host:port, auto or ray://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {address} ({err.strerror or err})") from err


class RayPending:
    def __init__(self, ref: ray.ObjectRef):
        self.ref = ref

    def ready(self) -> bool:
        done, _ = ray.wait([self.ref], timeout=0)
        return bool(done)

    def result(self) -> Any:
        return ray.get(self.ref)


class RayEndpoint:
    """Calls an actor's method with .remote(); the call never blocks the caller."""

    transient: tuple[type[BaseException], ...] = (ray.exceptions.RayActorError,  # a restarting actor
                                                  ray.exceptions.ActorUnavailableError)

    def __init__(self, handle: Any):
        self.handle = handle

    def call(self, method: str, *args: Any) -> RayPending:
        return RayPending(getattr(self.handle, method).remote(*args))


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

    def publish(self) -> int:
        version = super().publish()
        self.published_ref = ray.put(self.published)
        return version

    def latest(self) -> tuple[int, Any]:
        return self.published["version"], self.published_ref


class RayEvaluator(Evaluator):
    """Its own process at nice `eval.nice` (see workers.evaluator)."""

    def __init__(self, cfg: RunConfig):
        torch.set_num_threads(1)
        super().__init__(cfg, background=True)


class RayRobot(RobotWorker):
    def __init__(self, *args: Any, **kwargs: Any):
        torch.set_num_threads(1)
        super().__init__(*args, **kwargs)


# num_cpus=0: actors are scheduled by their own loops' rates, not by Ray's CPU accounting.
_actor = ray.remote(num_cpus=0, max_concurrency=4)  # type: ignore[call-overload]
# The buffer and the learner hold state a run cannot lose: Ray restarts them, the buffer replays its log and the
# learner restores its newest checkpoint. Robots are replaced by the supervisor instead (restart_robot).
_restartable = ray.remote(num_cpus=0, max_concurrency=4, max_restarts=RESTARTS)  # type: ignore[call-overload]


class RayFleet:
    def __init__(self, cfg: RunConfig, run_dir: Path, obs_dim: int, act_dim: int, incarnation: int = 0):
        self.cfg, self.clock = cfg, time.time
        buffer_name = f"dagger-buffer-{uuid.uuid4().hex}"  # unique on a cluster that other runs share
        buffer = _restartable(BufferWorker).options(name=buffer_name).remote(
            str(run_dir / "segments"), cfg.learner.human_fraction, cfg.seed)
        self.buffer: Endpoint = RayEndpoint(buffer)
        self.learner_handle = _restartable(RayLearner).remote(cfg, obs_dim, act_dim, buffer_name,
                                                        run_dir / "checkpoints")
        self.learner: Endpoint = RayEndpoint(self.learner_handle)
        self.robot_handles = [_actor(RayRobot).remote(i, cfg, self.buffer, incarnation=incarnation)
                              for i in range(cfg.robots)]
        self.robots: list[Endpoint] = [RayEndpoint(h) for h in self.robot_handles]
        self.incarnations = [incarnation] * cfg.robots
        self.evaluator_handle = _actor(RayEvaluator).remote(cfg)
        self.evaluator: Endpoint = RayEndpoint(self.evaluator_handle)

    def start(self) -> None:
        ray.get([h.start.remote() for h in self.robot_handles])
        settled(self.learner, "start")

    def between(self) -> None:
        pass

    def restart_robot(self, robot: int) -> Endpoint:
        """A fresh actor in place of a dead one; its segment keys cannot collide with the old ones'."""
        self.incarnations[robot] += 1
        ray.kill(self.robot_handles[robot], no_restart=True)
        handle = _actor(RayRobot).remote(robot, self.cfg, self.buffer, incarnation=self.incarnations[robot])
        ray.get(handle.start.remote())
        self.robot_handles[robot] = handle
        self.robots[robot] = RayEndpoint(handle)
        return self.robots[robot]

    def stop(self) -> list[dict]:
        polls = []
        for ref in [h.stop.remote() for h in self.robot_handles]:
            try:
                polls.append(ray.get(ref))
            except ray.exceptions.RayActorError:  # killed as the run ended: what it had not shipped is gone
                continue
        polls.append(settled(self.learner, "stop"))  # a learner restarting is waited for
        polls.append(settled(self.buffer, "poll"))
        settled(self.buffer, "close")
        buffer_handle = self.buffer.handle  # type: ignore[attr-defined]
        for handle in [*self.robot_handles, self.learner_handle, self.evaluator_handle, buffer_handle]:
            ray.kill(handle)
        return polls
