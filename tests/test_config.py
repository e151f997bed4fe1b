import pytest

from dagger.config import ConfigError, RunConfig, load_config, parse_override, task_config


def test_defaults_need_no_file():
    cfg = load_config()
    assert cfg.task.name == "reach" and cfg.learner.label_window == 5  # the default task's own (TASK_DEFAULTS)
    assert cfg.policy.type == "mlp-ensemble" and cfg.policy.lr == 1e-3  # the default family's own (FAMILIES)
    cfg.learner.label_window, cfg.policy.lr = RunConfig().learner.label_window, RunConfig().policy.lr
    assert cfg == RunConfig()
    assert cfg.gate.name == "ensemble" and cfg.robots == 4


def test_overrides_reach_nested_fields_and_coerce_ints_to_floats():
    cfg = load_config(None, ["gate.threshold=1", "robots=2", "operator.noise=0.0", "task=point"])
    assert cfg.gate.threshold == 1.0 and isinstance(cfg.gate.threshold, float)
    assert cfg.robots == 2 and cfg.operator.noise == 0.0 and cfg.task.name == "point"


def test_scientific_notation_is_a_float_though_yaml_1_1_reads_it_as_a_string(tmp_path):
    cfg = load_config(None, ["gate.threshold=1e9", "policy.lr=3E-4", "operator.noise=+2.5e-1"])
    assert (cfg.gate.threshold, cfg.policy.lr, cfg.operator.noise) == (1e9, 3e-4, 0.25)
    (tmp_path / "c.yaml").write_text("gate:\n  threshold: 1e9\n")
    assert load_config(tmp_path / "c.yaml").gate.threshold == 1e9
    with pytest.raises(ConfigError, match="expected float, got str '1e'"):
        load_config(None, ["gate.threshold=1e"])
    with pytest.raises(ConfigError, match="expected int, got str '1e3'"):
        load_config(None, ["robots=1e3"])


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("robots: 3\ngate:\n  name: auto\n  alpha: 0.2\n")
    cfg = load_config(path, ["gate.alpha=0.05"])
    assert (cfg.robots, cfg.gate.name, cfg.gate.alpha) == (3, "auto", 0.05)


@pytest.mark.parametrize("override, message", [
    ("gate.treshold=0.1", "did you mean 'gate.threshold'"),
    ("robts=2", "did you mean 'robots'"),
    ("robots=two", "expected int, got str"),
    ("robots=true", "expected int, got bool"),
    ("gate=3", "is a section"),
    ("robots=0", "'robots' must be in [1, 1000]"),
    ("gate.name=ensembel", "did you mean 'ensemble'"),
    ("task=pointt", "did you mean 'point'"),
    ("gate.alpha=1.5", "'gate.alpha' must be in (0, 1)"),
    ("learner.label_window=4", "'learner.label_window' must be an odd number of steps"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert message in str(info.value)
    assert override.split("=")[0] in str(info.value) or "config:" in str(info.value)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learner:\n  batchsize: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "learner.batch_size" in str(info.value)


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("robots")


def test_shipped_configs_load():
    from pathlib import Path

    files = sorted(Path(__file__).parent.parent.glob("configs/*.yaml"))
    assert files, "configs/ should ship at least one YAML file"
    for path in files:
        load_config(path)


def test_a_task_is_named_in_short_or_configured_in_full(tmp_path):
    (tmp_path / "c.yaml").write_text("task: point\n")
    assert load_config(tmp_path / "c.yaml").task.name == "point"
    cfg = load_config(None, ["task=reacher", "task.camera_jitter=4", "task.distractor=aligned"])
    assert (cfg.task.name, cfg.task.camera_jitter, cfg.task.distractor) == ("reacher", 4.0, "aligned")
    with pytest.raises(ConfigError, match="'task.distractor' is 'sometimes'"):
        load_config(None, ["task.distractor=sometimes"])
    with pytest.raises(ConfigError, match="'task.camera_jitter' must be in"):
        load_config(None, ["task.camera_jitter=-1"])


def test_eval_takes_the_checkpoints_task_settings_and_task_overrides_only():
    assert task_config("point", []).name == "point"
    saved = {"name": "reacher", "camera_jitter": 1.0, "distractor": "train"}
    got = task_config(saved, ["task.camera_jitter=8"])
    assert (got.name, got.camera_jitter) == ("reacher", 8.0)
    with pytest.raises(ConfigError, match="only task settings"):
        task_config(saved, ["robots=3"])


def test_an_image_task_refuses_a_gate_that_needs_state_transitions():
    with pytest.raises(ConfigError, match="'thrifty' trains a critic on state transitions"):
        load_config(None, ["task=reacher-image", "gate.name=thrifty"])
    assert load_config(None, ["task=reacher-image", "gate.name=ensemble"]).task.name == "reacher-image"


def test_a_task_brings_its_own_defaults_and_the_user_still_wins(tmp_path):
    cfg = load_config(None, ["task=reacher-image"])
    assert (cfg.robot.speed, cfg.learner.batch_size) == (1.0, 16)
    assert load_config(None, ["task=reacher-image", "robot.speed=2"]).robot.speed == 2.0
    (tmp_path / "c.yaml").write_text("task: reacher-image\nlearner: {batch_size: 8}\n")
    assert load_config(tmp_path / "c.yaml").learner.batch_size == 8
    assert load_config(None, ["task=reacher"]).learner.batch_size == RunConfig().learner.batch_size
