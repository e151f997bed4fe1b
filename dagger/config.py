"""Run configuration: dataclasses with working defaults, YAML files and `key.sub=value` overrides.

    cfg = load_config("configs/demo.yaml", ["gate.threshold=0.02", "robots=2"])

An unknown or ill-typed key is a ConfigError naming the key, where it came from, and the
closest valid key.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import importlib.util
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagger.allocators import ALLOCATORS, READS_RISK
from dagger.evaluation import MAX_RUN_SEED
from dagger.events import first_line
from dagger.gates import CALIBRATIONS, GATES, GateConfig
from dagger.gates.scores import SCORES
from dagger.policies.families import FAMILIES, PolicyConfig, trained_family
from dagger.scalars import WRITERS
from dagger.tasks import DISTRACTOR_MODES, TASK_DEFAULTS, TASK_IMAGES, TASKS, TaskConfig
from teleop_devices.browser import BrowserConfig
from teleop_devices.gamepad import GamepadConfig
from teleop_devices.keyboard import KeyboardConfig
from teleop_devices.leader_arm import LeaderConfig
from teleop_devices.remote import SafetyConfig
from teleop_devices.scripted import OPERATOR_KINDS, OPERATOR_MODES, OPERATOR_STYLES, OperatorConfig
from teleop_devices.spacemouse import SpaceMouseConfig

INFER_MODES = ("inline", "beside")
"""where a robot group's policy runs (robot.infer)"""
MAX_COUNT = 1000
"""most robots, operators or demonstrations a run takes"""

_LABEL_PART = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
NODE_LABEL = re.compile(rf"([A-Za-z0-9.-]+/)?{_LABEL_PART}={_LABEL_PART}")
"""a Ray node label as `ray start --labels` takes one: key=value, the key with an optional prefix/"""


class ConfigError(ValueError):
    """A user's configuration mistake; the message says what and where."""


@dataclass
class RobotConfig:
    speed: float = 4.0
    """control rate as a multiple of the task's real-time rate (1.0: one step per task dt)"""
    per_actor: int = 0
    """robots one worker process drives, with one batched policy call a control period for those it holds; 0: as
    many as spread the robots over the cores, ⌈robots / cores⌉ (measured best: README, "Fleet scale"; a process
    per robot costs ~380 MB and its share of a core)"""
    infer: str = "inline"
    """inline: the policy answers within the control period; beside: in a thread of its own, the period going on at
    once, each robot acting on the answer to its previous observation (a slow family keeps the control rate)"""
    segment_max_steps: int = 50
    """a segment closes after this many steps even without a controller change"""
    ship_every_s: float = 0.25
    """how often finished policy segments are sent to the buffer (human ones go at once)"""
    node_label: str = ""
    """on a Ray cluster, run the robots only on nodes with this label, key=value as `ray start --labels` gave it
    (e.g. role=robots; empty: any node)"""
    agents: list[str] = field(default_factory=list)
    """HOST:PORT of a `dagger robot-agent` for each robot (robot i drives agents[i]); empty: every robot steps its
    own simulator in its own process"""
    token_file: str = ""
    """the robot agents' shared secret, as hex (default: the DAGGER_ROBOT_TOKEN environment variable)"""
    tls_ca: str = ""
    """the robot agents speak TLS (`dagger robot-agent --tls-cert`): a PEM file of the CA that signed their
    certificates, or the certificate itself when self-signed (empty: no TLS; keep the link on a tunnel or VPN)"""


@dataclass
class LearnerConfig:
    batch_size: int = 128
    """samples per ensemble member per update"""
    publish_every: int = 200
    """updates between published weight versions"""
    updates_per_fetch: int = 20
    """updates trained on each batch of samples fetched from the buffer"""
    pretrain_updates: int = 500
    """behavior-cloning updates on the demonstrations before the robots start"""
    human_fraction: float = 0.0
    """share of each batch drawn from intervention steps (0: uniform over labels; IWR uses 0.5)"""
    label_window: int = 1
    """a person's labels (operator steps, demonstrations) train as the mean of this many neighbouring steps of their
    segment, centred (an odd number; 1: as given): a hand's jitter averages out, the log keeps what was sent. Where
    the task's own commands are smooth (Meta-World's: 5, see dagger.tasks.TASK_DEFAULTS); Reacher's expert changes
    its torques from step to step, and 5 took its behaviour cloning from 0.58 to 0.04"""
    max_updates_per_s: float = 1000.0
    """cap on the training rate so the learner leaves CPU to the robots (0: no cap)"""
    checkpoint_every: int = 20
    """write RUN_DIR/checkpoints/ every this many published versions, and at the end (0: only at the end)"""
    checkpoint_keep: int = 3
    """how many checkpoint files to keep (the newest)"""
    node_label: str = ""
    """on a Ray cluster, run the learner and the replay buffer only on nodes with this label, key=value as
    `ray start --labels` gave it (e.g. role=learner; empty: any node)"""


@dataclass
class EvalConfig:
    every_versions: int = 10
    """evaluate the policy alone every this many published versions during the run (0: never); an `eval` event
    each, for the learning curve in the report"""
    episodes: int = 20
    """episodes per evaluation (the same seeds each time, none of them a training seed)"""
    nice: int = 19
    """on Ray, the evaluator process's CPU niceness (19: the lowest priority, so robots' control loops come first)"""
    calibration_share: float = 0.5
    """gate.calibrate=conformal: the share of the evaluation episodes whose successes calibrate the gate's threshold;
    the rest measure it (the `calibration` event's false_alarm, detected, lead_s)"""


@dataclass
class LogConfig:
    writers: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])
    """where live scalars go while the run goes: jsonl (RUN_DIR/scalars.jsonl) | tensorboard (RUN_DIR/tb) | stdout |
    wandb (needs `pip install wandb`)"""
    every_s: float = 5.0
    """seconds between two writes of the live scalars"""
    wandb_project: str = "dagger"
    """the Weights & Biases project runs are logged to"""


@dataclass
class RunConfig:
    robots: int = 4
    """number of robot workers"""
    operators: int = 1
    """number of (simulated) operators serving the robots"""
    task: TaskConfig = field(default_factory=TaskConfig)
    steps: int = 30000
    """fleet steps to run (all robots together); ignored when minutes > 0"""
    minutes: float = 0.0
    """wall-clock length of the run (0: use steps)"""
    seed: int = 0
    """seeds tasks, policy initialisation, gates and operators"""
    allocator: str = "priority"
    """which waiting robot an operator serves next: priority | fifo | cur | fleet-ensemble | fleet-thrifty | random
    (dagger.allocators; robots an allocator leaves out are served after, longest waiting first)"""
    aging_s: float = 2.0
    """priority allocator: a waiting robot gains one unit of priority (score / threshold) per aging_s seconds
    (0: strict order by score, then waiting time)"""
    demos: int = 3
    """scripted-expert demonstration episodes the policy starts from"""
    demo_file: str = ""
    """someone else's demonstrations the policy starts from too (a robomimic HDF5 file; `dagger start --demos`);
    with demos=0, instead of scripted ones"""
    run_dir: str = ""
    """where the run is written (default: runs/<timestamp>)"""
    address: str = ""
    """Ray cluster to join (default: RAY_ADDRESS, else an embedded local Ray)"""
    storage_wait_s: float = 60.0
    """how long robots hold while the buffer cannot make an operator's correction durable (disk full, file too
    large, a hung buffer) before the run stops, saying why"""
    init_from: str = ""
    """start from this checkpoint's policy (a checkpoint file, checkpoints dir or run dir) instead of cloning
    the demonstrations from scratch"""
    gate: GateConfig = field(default_factory=GateConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    leader: LeaderConfig = field(default_factory=LeaderConfig)
    browser: BrowserConfig = field(default_factory=BrowserConfig)


SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, kind: Any, where: str) -> Any:
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(k for k in options if k is not type(None))
    if typing.get_origin(kind) in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item = typing.get_args(kind)[0]
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e9 (no dot) as a string
    if kind is str and value is None:
        return ""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"


def _apply(obj: Any, data: dict, where: str, prefix: str = "") -> None:
    types_ = _field_types(type(obj))
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in types_:
            valid = [f"{prefix}{k}" for k in types_]
            raise ConfigError(f"{where}: unknown key {path!r}{_suggest(path, valid)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, str) and "name" in _field_types(type(current)):
            value = {"name": value}  # `task: point` is short for `task: {name: point}`
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {path!r} is a section; expected a mapping, got {value!r}")
            _apply(current, value, where, f"{path}.")
            check = getattr(current, "__post_init__", None)
            if check is not None:
                try:
                    check()
                except ValueError as err:
                    raise ConfigError(f"{where}: {path!r}: {err}") from err
        else:
            setattr(obj, key, _coerce(value, types_[key], f"{where}: {path!r}"))


def _yaml(text: str | bytes, where: str) -> Any:
    """YAML's plain data (safe_load: no tags that build objects); any problem is one line naming `where`."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML ({' '.join(str(err).split())[:200]})") from err
    except RecursionError as err:
        raise ConfigError(f"{where}: nested too deeply") from err
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{where}: cannot read a value ({first_line(err).split(';')[0][:100]})") from err


def _shown(text: str, limit: int = 60) -> str:
    """A typed setting as an error message quotes it: whole, or its start."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def parse_override(text: str) -> dict:
    """`gate.threshold=0.02` -> {"gate": {"threshold": 0.02}} (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {_shown(text)}: expected key=value, e.g. gate.threshold=0.02")
    key, raw = text.split("=", 1)
    value = _yaml(raw, f"override {_shown(text)}") if raw else ""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value  # type: ignore[return-value]


def apply_settings(obj: Any, path: str | Path | None, overrides: list[str] | None) -> None:
    """Applies a YAML file, then `key.sub=value` overrides, to any settings dataclass."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read config: {' '.join(str(err).split())}") from err
        data = _yaml(text, str(path)) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        _apply(obj, data, str(path))
    for text in overrides or []:
        _apply(obj, parse_override(text), f"override {_shown(text)}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: RunConfig | None = None) -> RunConfig:
    """base (default RunConfig()), then the chosen task's and policy family's own defaults (TASK_DEFAULTS,
    FAMILIES' defaults), the file and the overrides."""
    probe = copy.deepcopy(base) if base is not None else RunConfig()
    apply_settings(probe, path, overrides)
    cfg = base or RunConfig()
    apply_settings(cfg, None, TASK_DEFAULTS.get(probe.task.name, []))
    family = FAMILIES.get(trained_family(probe.policy).type)
    apply_settings(cfg, None, list(family.defaults) if family is not None else [])
    apply_settings(cfg, path, overrides)
    validate(cfg)
    return cfg


def task_config(saved: dict | str | None, overrides: list[str]) -> TaskConfig:
    """A checkpoint's task settings (`saved`, from its run's config) with `task.*` overrides on top."""
    holder = RunConfig()
    if saved is not None:
        _apply(holder, {"task": saved}, "checkpoint config")
    for text in overrides:
        if not text.split("=", 1)[0].strip().startswith("task"):
            raise ConfigError(f"override {_shown(text)}: only task settings apply here (task.name, task.camera_jitter, "
                              "...)")
    apply_settings(holder, None, overrides)
    validate(holder)
    return holder.task


def validate(cfg: RunConfig) -> None:
    """Names and ranges that types alone cannot check."""
    names: list[tuple[str, str, list[str]]] = [("task.name", cfg.task.name, sorted(TASKS)),
                                               ("task.distractor", cfg.task.distractor, list(DISTRACTOR_MODES)),
                                               ("gate.name", cfg.gate.name, sorted(GATES)),
                                               ("gate.calibrate", cfg.gate.calibrate, list(CALIBRATIONS)),
                                               ("gate.score", cfg.gate.score, list(SCORES)),
                                               ("allocator", cfg.allocator, sorted(ALLOCATORS)),
                                               ("policy.type", cfg.policy.type, [*FAMILIES, "remote"]),
                                               ("policy.serve", cfg.policy.serve, list(FAMILIES))]
    names += [(f"operator.kinds[{i}]", kind, list(OPERATOR_KINDS)) for i, kind in enumerate(cfg.operator.kinds)]
    names.append(("operator.style", cfg.operator.style, list(OPERATOR_STYLES)))
    names.append(("operator.mode", cfg.operator.mode, list(OPERATOR_MODES)))
    names += [(f"log.writers[{i}]", name, list(WRITERS)) for i, name in enumerate(cfg.log.writers)]
    for key, value, valid in names:
        if value not in valid:
            raise ConfigError(f"config: {key!r} is {value!r}, not a known one{_suggest(value, valid)}")
    checks = [
        (1 <= cfg.robots <= MAX_COUNT, "robots", f"must be in [1, {MAX_COUNT}]"),
        (0 <= cfg.seed < MAX_RUN_SEED, "seed", f"must be in [0, {MAX_RUN_SEED}) (evaluation seeds lie above)"),
        (1 <= cfg.operators <= MAX_COUNT, "operators", f"must be in [1, {MAX_COUNT}]"),
        (cfg.steps >= 1, "steps", "must be at least 1"),
        (cfg.minutes >= 0, "minutes", "must not be negative"),
        (cfg.aging_s >= 0, "aging_s", "must not be negative"),
        (cfg.storage_wait_s > 0, "storage_wait_s", "must be positive"),
        (1 <= cfg.demos <= MAX_COUNT or (cfg.demos == 0 and cfg.demo_file), "demos",
         f"must be in [1, {MAX_COUNT}] (the policy starts from demonstrations), or 0 with a demo_file"),
        (cfg.robot.speed > 0, "robot.speed", "must be positive"),
        (0 <= cfg.task.camera_jitter <= 90, "task.camera_jitter", "must be in [0, 90] (cm and degrees)"),
        (cfg.task.name not in TASK_IMAGES or not GATES[cfg.gate.name].needs, "gate.name",
         f"{cfg.gate.name!r} trains a {'/'.join(GATES[cfg.gate.name].needs)} on state transitions, which an image task "
         f"({cfg.task.name}) does not store; use a gate without one, e.g. ensemble"),
        (cfg.task.name not in TASK_IMAGES or cfg.allocator not in READS_RISK, "allocator",
         f"{cfg.allocator!r} reads a hazard critic trained on state transitions, which an image task ({cfg.task.name}) "
         "does not store; use e.g. priority"),
        (0 < cfg.gate.false_alarm < 1, "gate.false_alarm", "must be in (0, 1)"),
        (0 <= cfg.gate.adapt < 1, "gate.adapt", "must be in [0, 1)"),
        (0 < cfg.eval.calibration_share <= 1, "eval.calibration_share", "must be in (0, 1]"),
        (cfg.gate.calibrate != "conformal" or cfg.gate.name == "ensemble", "gate.calibrate",
         f"conformal replaces the threshold of gate.name=ensemble; {cfg.gate.name!r} has rules of its own"),
        (cfg.gate.calibrate != "conformal" or cfg.eval.every_versions > 0, "gate.calibrate",
         "conformal is calibrated by the evaluator: eval.every_versions must be at least 1"),
        (cfg.robot.segment_max_steps >= 1, "robot.segment_max_steps", "must be at least 1"),
        (0 <= cfg.robot.per_actor <= MAX_COUNT, "robot.per_actor", f"must be in [0, {MAX_COUNT}] (0: by the cores)"),
        (cfg.robot.infer in INFER_MODES, "robot.infer", f"must be one of {list(INFER_MODES)}"),
        (len(cfg.robot.agents) in (0, 1, cfg.robots), "robot.agents",
         f"gives {len(cfg.robot.agents)} agents for {cfg.robots} robots: give one per robot, or one HOST:PORT "
         "(robot i at PORT+i)"),
        (all(re.fullmatch(r"[^\s:]+:\d{1,5}", a) for a in cfg.robot.agents), "robot.agents",
         f"{cfg.robot.agents}: each must be HOST:PORT"),
        (all(1 <= _port(a) <= 65535 for a in cfg.robot.agents), "robot.agents",
         f"{[a for a in cfg.robot.agents if not 1 <= _port(a) <= 65535][:3]}: a port must be in 1..65535"),
        (len(cfg.robot.agents) != 1 or _port(cfg.robot.agents[0]) + cfg.robots - 1 <= 65535, "robot.agents",
         f"{cfg.robot.agents}: robot i is at PORT+i, and robot {cfg.robots - 1}'s port is past 65535"),
        (0 < cfg.gate.alpha < 1, "gate.alpha", "must be in (0, 1)"),
        (cfg.gate.threshold >= 0, "gate.threshold", "must not be negative"),
        (cfg.gate.tau_sup > 0, "gate.tau_sup", "must be positive"),
        (0 < cfg.gate.tau_auto <= 1, "gate.tau_auto", "must be in (0, 1]"),
        (0 < cfg.policy.gamma < 1, "policy.gamma", "must be in (0, 1)"),
        (0 < cfg.policy.risk_gamma < 1, "policy.risk_gamma", "must be in (0, 1)"),
        (2 <= cfg.policy.members <= 64, "policy.members", "must be in [2, 64] (the spread needs an ensemble)"),
        (1 <= cfg.learner.batch_size <= 65536, "learner.batch_size", "must be in [1, 65536]"),
        (0 <= cfg.learner.human_fraction <= 1, "learner.human_fraction", "must be in [0, 1]"),
        (cfg.learner.label_window >= 1 and cfg.learner.label_window % 2 == 1, "learner.label_window",
         "must be an odd number of steps, at least 1"),
        (cfg.learner.checkpoint_every >= 0, "learner.checkpoint_every", "must not be negative"),
        (cfg.learner.checkpoint_keep >= 1, "learner.checkpoint_keep", "must be at least 1"),
        (cfg.eval.every_versions >= 0, "eval.every_versions", "must not be negative"),
        (1 <= cfg.eval.episodes <= 100_000, "eval.episodes", "must be in [1, 100000]"),
        (0 <= cfg.eval.nice <= 19, "eval.nice", "must be in [0, 19]"),
        (cfg.learner.publish_every >= 1, "learner.publish_every", "must be at least 1"),
        (cfg.learner.updates_per_fetch >= 1, "learner.updates_per_fetch", "must be at least 1"),
        (cfg.learner.pretrain_updates >= 0, "learner.pretrain_updates", "must not be negative"),
        (cfg.learner.max_updates_per_s >= 0, "learner.max_updates_per_s", "must not be negative (0: no cap)"),
        (cfg.policy.lr > 0, "policy.lr", "must be positive"),
        (1 <= cfg.policy.chunk <= 256, "policy.chunk", "must be in [1, 256]"),
        (1 <= cfg.policy.execute <= cfg.policy.chunk, "policy.execute", "must be in [1, policy.chunk]"),
        (trained_family(cfg.policy).type != "diffusion" or cfg.policy.chunk % 2 == 0, "policy.chunk",
         "must be even for a diffusion policy (its U-Net halves the action horizon once)"),
        (1 <= cfg.policy.obs_steps <= 16, "policy.obs_steps", "must be in [1, 16]"),
        (2 <= cfg.policy.samples <= 1024, "policy.samples", "must be in [2, 1024] (a spread needs samples)"),
        (2 <= cfg.policy.denoise_steps <= 1000, "policy.denoise_steps", "must be in [2, 1000]"),
        (1 <= cfg.policy.inference_steps <= cfg.policy.denoise_steps, "policy.inference_steps",
         "must be in [1, policy.denoise_steps]"),
        (1 <= cfg.policy.negatives <= 8192, "policy.negatives", "must be in [1, 8192]"),
        (cfg.policy.deadline_ms > 0, "policy.deadline_ms", "must be positive"),
        (not cfg.policy.address or 1 <= _port(cfg.policy.address) <= 65535, "policy.address",
         f"must be host:port with a port in 1..65535, not {_shown(cfg.policy.address)}"),
        (0 <= _port(cfg.browser.listen) <= 65535 and bool(cfg.browser.listen.rpartition(":")[0]), "browser.listen",
         f"must be host:port with a port in 0..65535 (0: any free one), not {_shown(cfg.browser.listen)}"),
        (bool(cfg.browser.tls_cert) or not cfg.browser.tls_key, "browser.tls_key", "needs browser.tls_cert"),
        (not cfg.policy.address or bool(cfg.policy.token_file), "policy.token_file",
         "must name the policy server's secret when policy.address is set"),
        (1 <= cfg.policy.hidden <= 65536, "policy.hidden", "must be in [1, 65536]"),
        (1 <= cfg.policy.layers <= 64, "policy.layers", "must be in [1, 64]"),
        (cfg.operator.attention >= 1, "operator.attention", "must be at least 1 (else no robot is ever served)"),
        (cfg.operator.correction_steps >= 1, "operator.correction_steps", "must be at least 1"),
        (0 < cfg.operator.nudge_bound <= 1, "operator.nudge_bound", "must be in (0, 1] (a fraction of the half range)"),
        (cfg.operator.nudge_to_takeover_s >= 0, "operator.nudge_to_takeover_s", "must not be negative"),
        (cfg.robot.ship_every_s >= 0, "robot.ship_every_s", "must not be negative"),
        (0 <= cfg.gate.rate <= 1, "gate.rate", "must be in [0, 1]"),
        (cfg.gate.window >= 1, "gate.window", "must be at least 1"),
        (bool(cfg.operator.kinds), "operator.kinds", "must name at least one kind"),
        (cfg.safety.max_age_s > 0, "safety.max_age_s", "must be positive"),
        (cfg.log.every_s > 0, "log.every_s", "must be positive"),
        ("wandb" not in cfg.log.writers or importlib.util.find_spec("wandb") is not None, "log.writers",
         "names wandb, which is not installed (pip install wandb)"),
    ]
    checks += [(not label or bool(NODE_LABEL.fullmatch(label)), key,
                f"must be a Ray node label, key=value (e.g. role=robots; empty: any node), not {_shown(label)}")
               for key, label in (("robot.node_label", cfg.robot.node_label),
                                  ("learner.node_label", cfg.learner.node_label))]
    checks += [(math.isfinite(value), key, "must be a finite number") for key, value in _numbers(cfg)]
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"config: {key!r} {why}")


def _port(address: str) -> int:
    """HOST:PORT's port; -1 when it has none."""
    port = address.rpartition(":")[2]
    return int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else -1


def _numbers(obj: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every float setting, with its dotted key."""
    out: list[tuple[str, float]] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += _numbers(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            out.append((f"{prefix}{f.name}", value))
    return out


def to_dict(cfg: RunConfig) -> dict:
    """Plain lists and dicts (YAML- and JSON-safe)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
