"""A real Ray cluster: a local Ray listens on loopback only; a 2-node cluster with token authentication runs a pinned
`dagger start --address`, and refuses a process without its token."""

import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dagger.config import ConfigError, load_config
from dagger.events import read_events
from tests.conftest import ROOT, wait_until

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_text() if name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        if stat:
            children.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(name))
    tree, todo = [], [root]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def tcp_listeners(pids: list[int]) -> list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(process name, address, port) of every TCP socket these processes listen on, read from /proc."""
    owner = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    owner[link[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in owner:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, len(address), 8))
                ip = ipaddress.ip_address(raw)
                ip = getattr(ip, "ipv4_mapped", None) or ip
                found.append((Path(f"/proc/{owner[fields[9]]}/comm").read_text().strip(), ip, int(port, 16)))
    return found


LOCAL_RAY = """
import ray
from workers.ray_fleet import init_ray

init_ray(num_cpus=1)

@ray.remote(num_cpus=0)
class Actor:
    def ping(self):
        return True

actor = Actor.remote()
ray.get(actor.ping.remote())
print("ready", flush=True)
input()
"""


def test_a_local_ray_listens_on_loopback_only():
    ray = subprocess.Popen([sys.executable, "-c", LOCAL_RAY], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        assert ray.stdout is not None and ray.stdout.readline().strip() == "ready"
        listeners = tcp_listeners(process_tree(ray.pid))
    finally:
        ray.communicate("\n", timeout=60)
    assert {"gcs_server", "raylet", "ray::Actor"} <= {name for name, _, _ in listeners}, listeners
    assert len(listeners) >= 5, listeners  # and the driver's, the raylet's second, the runtime-env agent's
    assert all(ip.is_loopback for _, ip, _ in listeners), listeners


@pytest.mark.parametrize("label", ["role", "=robots", "role=", "role=a b", "-x=1"])
def test_a_malformed_node_label_names_its_key(label):
    with pytest.raises(ConfigError, match="'learner.node_label' must be a Ray node label"):
        load_config(None, [f"learner.node_label={label}"])
    assert load_config(None, ["robot.node_label=example.com/arm=left-0"]).robot.node_label == "example.com/arm=left-0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def start_node(folder: Path, name: str, env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    """`ray start --block` in a session (process group) of its own, so that its Ray processes go with the group;
    returns it and its node's IP, once it runs."""
    log = folder / f"{name}.log"
    env = {**env, "PYTHONUNBUFFERED": "1", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # stops at once
    with open(log, "w") as out:
        node = subprocess.Popen([RAY, "start", "--block", "--temp-dir", str(folder / "ray"), "--num-cpus", "1",
                                 "--disable-usage-stats", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: "Ray runtime started" in log.read_text() or node.poll() is not None, timeout=60,
                   what=f"Ray's {name} node", every=0.2)
        assert node.poll() is None, log.read_text()
    except BaseException:
        stop_nodes([node])
        raise
    return node, re.search(r"Local node IP: (\S+)", log.read_text())[1]


def stop_nodes(nodes: list[subprocess.Popen]) -> None:
    """Stops only these nodes' processes (`ray stop` would stop every Ray on the machine, the test session's too)."""
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGTERM)  # `ray start --block` stops its node's processes
    for node in nodes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)  # whatever of its group is left
        node.wait()


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A head labelled role=learner and a node labelled role=robots, both with token authentication on; yields the
    head's address and the environment that carries the token (HOME is a temp dir: ~/.ray is not read)."""
    folder = tmp_path_factory.mktemp("cluster")
    (folder / "home").mkdir()
    (folder / "token").write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(HOME=str(folder / "home"), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(folder / "token"))
    port = free_port()
    head, ip = start_node(folder, "head", env, "--head", "--port", str(port), "--include-dashboard", "false",
                          "--labels", "role=learner")
    nodes = [head]
    try:
        nodes.append(start_node(folder, "node", env, "--address", f"{ip}:{port}", "--labels", "role=robots")[0])
        yield f"{ip}:{port}", env, folder
    finally:
        stop_nodes(nodes)


def dagger_start(address: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dagger.app.cli", "start", "--address", address, *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)


def test_robots_and_learner_run_on_the_nodes_their_labels_name(two_nodes):
    address, env, folder = two_nodes
    run = dagger_start(address, env, "--task", "point", "--robots", "2", "--steps", "200", "--run-dir",
                       str(folder / "run"), "demos=2", "learner.pretrain_updates=20", "learner.batch_size=32",
                       "robot.speed=10.0", "eval.every_versions=0", "robot.node_label=role=robots",
                       "learner.node_label=role=learner")
    assert run.returncode == 0, run.stderr[-2000:]
    events = read_events(folder / "run" / "events.jsonl")
    nodes: dict[str, set[str]] = {}
    for e in events:
        if e["ev"] == "placed":
            nodes.setdefault(e["role"], set()).add(e["node"])
    assert len(nodes["robot"]) == len(nodes["learner"]) == 1
    assert nodes["robot"] != nodes["learner"] == nodes["buffer"]  # the buffer follows the learner
    assert sorted(e["robot"] for e in events if e["ev"] == "placed" and e["role"] == "robot") == [0, 1]
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] == "budget"
    assert json.loads((folder / "run" / "summary.json").read_text())["steps"] >= 200


@pytest.mark.parametrize("token, message", [
    (None, "wants its token, and this process has none"),
    ("0" * 64, "refused this process's token"),
])
def test_joining_without_the_clusters_token_is_refused_in_one_line(two_nodes, token, message):
    address, env, folder = two_nodes
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}  # as a user's shell: no RAY_AUTH_MODE
    if token is not None:
        (folder / "other_token").write_text(token)
        env["RAY_AUTH_TOKEN_PATH"] = str(folder / "other_token")
    run = dagger_start(address, env, "--run-dir", str(folder / f"refused-{token is None}"))
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0, run.stderr
    assert message in run.stderr and "RAY_AUTH_TOKEN_PATH" in run.stderr and "Traceback" not in run.stderr
    assert not (folder / f"refused-{token is None}").exists()


def test_a_cluster_without_token_authentication_is_joined_only_when_asked(tmp_path_factory, monkeypatch, capsys):
    from workers.ray_fleet import check_reachable

    folder = tmp_path_factory.mktemp("open")  # short: Ray's socket paths in it must stay under 108 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(folder), RAY_AUTH_MODE="disabled")
    port = free_port()
    head, ip = start_node(folder, "open", env, "--head", "--port", str(port), "--include-dashboard", "false")
    try:
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        with pytest.raises(ConnectionError, match="runs without token authentication.*RAY_AUTH_MODE=disabled"):
            check_reachable(f"{ip}:{port}")
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        check_reachable(f"{ip}:{port}")
        assert "warning: joining" in capsys.readouterr().err
    finally:
        stop_nodes([head])
