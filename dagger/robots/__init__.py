"""Robots: what a RobotWorker drives. A simulated task in the worker's own process (SimRobot), or a robot behind a
`dagger robot-agent` on this or another host (RemoteRobot), reached over an authenticated TCP bridge.

    robot = make_robot(cfg, robot_id)        # robot.agents set: robot i is a RemoteRobot at agents[i]
"""

from __future__ import annotations

import os

from dagger.robots.base import Observation, Robot, RobotLate, SimRobot
from dagger.tasks import TaskConfig, make_task
from dagger.wire import checked_token, read_token

TOKEN_ENV = "DAGGER_ROBOT_TOKEN"


def robot_token(token_file: str = "") -> bytes:
    """The robot agents' shared secret: a hex file, else $DAGGER_ROBOT_TOKEN (hex); ValueError saying how to set it."""
    if token_file:
        return read_token(token_file)
    text = os.environ.get(TOKEN_ENV, "").strip()
    if not text:
        raise ValueError(f"a robot agent needs a shared secret: robot.token_file=FILE (hex) or ${TOKEN_ENV}; make one "
                         'with python -c "import secrets; print(secrets.token_hex(32))" > robot.token')
    try:
        return checked_token(bytes.fromhex(text), f"${TOKEN_ENV}")
    except ValueError as e:
        raise ValueError(f"${TOKEN_ENV}: the secret as hex, at least 16 bytes ({e})") from e


def agent_address(agents: list[str], robot: int) -> str:
    """Robot `robot`'s agent: agents[robot], or one HOST:PORT for all robots meaning ports PORT, PORT+1, ..."""
    if len(agents) == 1 and robot > 0:
        host, _, port = agents[0].rpartition(":")
        return f"{host}:{int(port) + robot}"
    return agents[robot]


def make_robot(task: TaskConfig, agents: list[str], token_file: str, robot: int, tls_ca: str = "") -> Robot:
    """Robot `robot` of a run: its own simulator, or (agents set) the robot agent that serves it, connected (over TLS
    when `tls_ca` names the CA, or the self-signed certificate, of the agents' certificates)."""
    if not agents:
        return SimRobot(make_task(task))
    from dagger.robots.remote import RemoteRobot
    from dagger.wire import client_tls

    remote = RemoteRobot(agent_address(agents, robot), robot_token(token_file),
                         tls=client_tls(tls_ca) if tls_ca else None)
    remote.connect()
    if remote.name != task.name:
        remote.disconnect()
        raise ValueError(f"robot {robot}: the agent at {remote.address} runs task {remote.name!r} "
                         f"(obs {remote.obs_dim}, act {remote.act_dim}); this run's task is {task.name!r}")
    return remote


__all__ = ["Observation", "Robot", "RobotLate", "SimRobot", "make_robot", "robot_token"]
