"""`dagger robot-agent`: serves robots (here simulators standing in for them) to a run's RobotWorkers over TCP.

    dagger robot-agent --task reach --robots 4 --port 7700 --token-file robot.token
    dagger start --task reach --robots 4 robot.agents=[127.0.0.1:7700] robot.token_file=robot.token
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from dagger.app.errors import UserError
from dagger.app.ports import MAX_PORT, port
from dagger.config import task_config
from dagger.robots import SimRobot, robot_token
from dagger.robots.agent import RobotAgent
from dagger.tasks import make_task
from dagger.wire import server_tls


def add_parser(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("robot-agent", help="serve robots to a run over the network (robot.agents)",
                           description="Serve robots to a run's robot workers over authenticated TCP: robot i "
                                       "listens on PORT+i. Each robot runs its own control loop and holds when no "
                                       "valid command came within its watchdog deadline.")
    agent.add_argument("--task", default="reach", help="the task each robot runs (default: reach)")
    agent.add_argument("--robots", type=int, default=1, help="robots to serve, on ports PORT, PORT+1, ...")
    agent.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    agent.add_argument("--port", type=port, default=7700,
                       help=f"the first robot's port, 0..{MAX_PORT} (0: a free one for each robot)")
    agent.add_argument("--token-file", default="", help="the shared secret as hex (default: $DAGGER_ROBOT_TOKEN)")
    agent.add_argument("--speed", type=float, default=4.0,
                       help="control rate as a multiple of the task's real time (default 4, as robot.speed)")
    agent.add_argument("--watchdog-periods", type=float, default=3.0,
                       help="hold a robot when no valid command came for this many control periods (default 3)")
    agent.add_argument("--max-age-ms", type=float, default=500.0,
                       help="refuse a message sent longer ago than this, by the measured clock offset (default 500)")
    agent.add_argument("--tls-cert", default="", help="speak TLS with this certificate (PEM); the run then sets "
                                                      "robot.tls_ca (default: no TLS: keep the link on a tunnel)")
    agent.add_argument("--tls-key", default="", help="the certificate's private key (PEM; default: in --tls-cert)")
    agent.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: at Ctrl-C)")
    agent.add_argument("overrides", nargs="*", metavar="task.key=value",
                       help="task settings, e.g. task.distractor=random")


def cmd_robot_agent(args: argparse.Namespace) -> int:
    """Runs the agents until interrupted (or --seconds); prints each robot's health as JSON at the end."""
    if not 1 <= args.robots <= 64 or args.speed <= 0 or args.watchdog_periods <= 0 or args.max_age_ms <= 0:
        raise UserError("robot-agent: --robots must be in [1, 64]; --speed, --watchdog-periods, --max-age-ms > 0")
    if args.port and args.port + args.robots - 1 > MAX_PORT:
        raise UserError(f"robot-agent: --port {args.port} --robots {args.robots}: robot i listens on PORT+i, and "
                        f"{args.port + args.robots - 1} is past {MAX_PORT}; give --port at most "
                        f"{MAX_PORT - args.robots + 1} (or 0: any free ports)")
    if args.tls_key and not args.tls_cert:
        raise UserError("robot-agent: --tls-key needs --tls-cert")
    try:
        token = robot_token(args.token_file)
        tls = server_tls(args.tls_cert, args.tls_key or args.tls_cert) if args.tls_cert else None
        task = task_config(args.task, args.overrides)
        agents = []
        for i in range(args.robots):
            robot = SimRobot(make_task(task))
            agents.append(RobotAgent(robot, token, args.host, args.port + i if args.port else 0,
                                     robot.dt / args.speed, args.watchdog_periods, args.max_age_ms / 1000,
                                     tls=tls).start())
    except (OSError, ValueError) as err:
        raise UserError(f"robot-agent: {err}") from err
    for i, agent in enumerate(agents):
        print(f"robot {i}: {task.name} at {agent.address}, a period of {agent.period * 1000:.2f} ms", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(args.seconds or None)
    except KeyboardInterrupt:
        pass
    for i, agent in enumerate(agents):
        agent.close()
        print(json.dumps({"robot": i, **agent.health()}), flush=True)
    return 0
