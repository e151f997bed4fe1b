"""Before a run writes anything or starts Ray: the parts outside it that it needs must answer. A policy server
(`policy.address`) and each robot agent (`robot.agents`) are asked once, each within a few seconds; one that does not
answer, refuses the token or serves something else is one line naming it and what to do.

    check_outside_parts(cfg)      # UserError, or nothing
"""

from __future__ import annotations

import os
import socket

from dagger.app.errors import UserError
from dagger.config import RunConfig
from dagger.core import PolicyTimeout
from dagger.tasks import make_task

ASK_S = 5.0
"""how long a policy server or a robot agent has to answer the check"""


def reachable(what: str, address: str, remedy: str) -> None:
    """UserError naming `what` when nothing accepts a connection at address (HOST:PORT)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ASK_S).close()
    except OSError as err:
        raise UserError(f"{what} {address}: nothing answers ({err.strerror or err}); {remedy}") from err


def check_policy_server(cfg: RunConfig) -> None:
    """A served policy at policy.address answers, takes the token, and acts in the task's dimensions."""
    from dagger.policies.remote import RemotePolicy, RemotePolicyError
    from dagger.wire import client_tls, read_token

    address = cfg.policy.address
    reachable("policy.address", address, "start the server first (dagger serve RUN_DIR --port PORT --token-file F)")
    task = make_task(cfg.task)
    client = RemotePolicy(address, read_token(cfg.policy.token_file), cfg.policy.deadline_ms, timeout_s=ASK_S,
                          tls=client_tls(cfg.policy.tls_ca) if cfg.policy.tls_ca else None)
    try:
        hello = client.hello()
    except (PolicyTimeout, RemotePolicyError) as err:
        raise UserError(f"policy.address {address}: {err}") from err
    finally:
        client.close()
    dims = {k: hello[k] for k in ("obs_dim", "act_dim") if k in hello}
    if dims and dims != {"obs_dim": task.obs_dim, "act_dim": task.act_dim}:
        raise UserError(f"policy.address {address}: the served policy takes {dims.get('obs_dim')}-d observations to "
                        f"{dims.get('act_dim')}-d actions; task {task.name} has {task.obs_dim} and {task.act_dim}")


def check_robot_agents(cfg: RunConfig) -> None:
    """Every robot's agent answers, takes the token and runs this run's task (the handshake a robot will make)."""
    from dagger.robots import agent_address, make_robot

    for robot in range(cfg.robots):
        address = agent_address(cfg.robot.agents, robot)
        reachable(f"robot {robot}: robot agent", address,
                  f"start it first (dagger robot-agent --task {cfg.task.name} --port PORT --token-file F)")
        try:
            make_robot(cfg.task, cfg.robot.agents, cfg.robot.token_file, robot, cfg.robot.tls_ca).disconnect()
        except (ConnectionError, ValueError) as err:
            raise UserError(str(err).splitlines()[0]) from err


def check_outside_parts(cfg: RunConfig) -> None:
    """The policy server (the driver pushes it weights, so it must reach it too) and, when the robots run on this
    machine, their agents; on a cluster the robot workers reach their agents from their own nodes (agents often on
    those nodes' loopback), which this machine cannot check."""
    if cfg.policy.type == "remote" and cfg.policy.address:
        check_policy_server(cfg)
    on_this_machine = not (cfg.address or os.environ.get("RAY_ADDRESS") or cfg.robot.node_label)
    if cfg.robot.agents and on_this_machine:
        check_robot_agents(cfg)
