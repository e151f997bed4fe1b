"""Live scalars: namespaced numbers from the event stream, checked against hand-computed values."""

import json

import pytest

from dagger.config import ConfigError, load_config
from dagger.scalars import JsonlWriter, ScalarLogger, make_writers

EVENTS = [
    {"ev": "run_start", "t": 0.0},
    {"ev": "segment", "t": 1.0, "robot": 0, "seq": 0, "controller": "policy", "steps": 100},
    {"ev": "help_requested", "t": 2.0, "robot": 0, "threshold": 0.05, "score": 0.09},
    {"ev": "operator_assigned", "t": 2.5, "robot": 0, "operator": 0, "queued_s": 0.5},
    {"ev": "takeover", "t": 3.0, "robot": 0, "operator": 0},
    {"ev": "segment", "t": 4.0, "robot": 0, "seq": 1, "controller": "operator:0", "steps": 20},
    {"ev": "stored", "t": 4.0, "robot": 0, "seq": 1, "steps": 20},
    {"ev": "episode_end", "t": 5.0, "robot": 0, "success": True, "human_steps": 20},
    {"ev": "segment", "t": 6.0, "robot": 1, "seq": 0, "controller": "policy", "steps": 80},
    {"ev": "episode_end", "t": 6.0, "robot": 1, "success": True, "human_steps": 0},
    {"ev": "segment", "t": 6.5, "robot": -1, "seq": 0, "controller": "demo", "steps": 50},
    {"ev": "learner", "t": 7.0, "updates": 50, "loss": 0.5},
    {"ev": "weights_published", "t": 7.0, "version": 3},
    {"ev": "eval", "t": 7.0, "version": 3, "success_rate": 0.6, "ci95": [0.4, 0.8], "episodes": 20},
]
FINAL = {"fleet/steps": 200, "fleet/human_steps": 20, "fleet/human_steps_taken": 20, "fleet/intervention_rate": 0.1,
         "fleet/takeovers": 1,
         "fleet/help_requests": 1, "fleet/episodes": 2, "fleet/success_rate": 1.0, "fleet/autonomous_success_rate": 0.5,
         "gate/threshold": 0.05, "operator/0/queued_s": 0.5, "operator/0/takeovers": 1, "learner/updates": 50,
         "learner/loss": 0.5, "learner/version": 3, "buffer/human_steps_stored": 20, "eval/success_rate": 0.6,
         "eval/version": 3, "eval/ci95_low": 0.4, "eval/ci95_high": 0.8, "robot/0/steps": 120,
         "robot/0/human_steps": 20, "robot/0/episodes": 1, "robot/0/successes": 1, "robot/1/steps": 80,
         "robot/1/human_steps": 0, "robot/1/episodes": 1, "robot/1/successes": 1}


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_scalars_are_the_hand_computed_numbers_written_every_every_s(tmp_path):
    logger = ScalarLogger([JsonlWriter(tmp_path / "scalars.jsonl")], every_s=2.0)
    for event in EVENTS:  # one at a time, as a live run logs them
        logger.add([event])
    logger.close()
    written = lines(tmp_path / "scalars.jsonl")
    # the line at t=4.0 is written as the operator's segment closes, before the buffer acknowledged it: its steps
    # are taken, not yet stored; they count (step 120, rate 20 / 120) once the `stored` event arrives
    assert [(w["step"], w["t"]) for w in written] == [(100, 2.0), (100, 4.0), (200, 6.0), (200, 7.0)]
    assert {k: v for k, v in written[-1].items() if k not in ("step", "t")} == pytest.approx(FINAL)
    assert (written[1]["fleet/human_steps_taken"], written[1]["fleet/human_steps"]) == (20, 0)
    assert written[2]["fleet/intervention_rate"] == 20 / 200


def test_only_what_the_buffer_kept_counts_live_and_in_a_replay(tmp_path):
    from dagger.metrics import summarize
    from dagger.scalars import replay

    def segment(t, robot, seq, controller, steps):
        return {"ev": "segment", "t": t, "robot": robot, "seq": seq, "controller": controller, "steps": steps,
                "t_start": t - 1, "t_end": t, "versions": [[1, steps]]}

    # robot 0: policy 10, operator 6 (stored), operator 4 (the buffer failed: never stored); robot 1: operator 5
    # (stored), then the segment log, reopened, says it lost 1:0 and robot 0's policy segment 0:0
    events = [{"ev": "run_start", "t": 0.0},
              segment(1.0, 0, 0, "policy", 10), segment(2.0, 0, 1, "operator:0", 6),
              {"ev": "stored", "t": 2.1, "robot": 0, "seq": 1, "steps": 6},
              segment(3.0, 0, 2, "operator:0", 4),
              {"ev": "ship_failed", "t": 3.1, "robot": 0, "error": "File too large", "segments": 1},
              segment(4.0, 1, 0, "operator:1", 5), {"ev": "stored", "t": 4.1, "robot": 1, "seq": 0, "steps": 5}]
    live = ScalarLogger([JsonlWriter(tmp_path / "live.jsonl")], every_s=100.0)
    live.add(events)
    live.close()
    last = lines(tmp_path / "live.jsonl")[-1]
    assert (last["fleet/steps"], last["fleet/human_steps"], last["fleet/human_steps_taken"]) == (21, 11, 15)
    assert (last["robot/0/human_steps"], last["robot/1/human_steps"]) == (6, 5)
    # resumed: the earlier run's events absorbed, then the resumed run's buffer says its log lost 1:0 and 0:0
    lost = {"ev": "log_lost", "t": 5.0, "keys": ["1:0", "0:0"], "frames": 2, "human_steps": 5}
    live = ScalarLogger([JsonlWriter(tmp_path / "after.jsonl")], every_s=100.0)
    live.absorb(events)
    live.add([{"ev": "run_start", "t": 4.5}, lost])
    live.close()
    events += [{"ev": "run_start", "t": 4.5}, lost]
    replay(events, [JsonlWriter(tmp_path / "replay.jsonl")])
    summary = summarize(events)
    for written in lines(tmp_path / "after.jsonl")[-1], lines(tmp_path / "replay.jsonl")[-1]:
        robot_1 = written.get("robot/1/human_steps", 0)
        assert (written["fleet/steps"], written["fleet/human_steps"], robot_1) == (6, 6, 0)
        assert (written["fleet/steps"], written["fleet/human_steps"]) == (summary["steps"], summary["human_steps"])


def test_a_resumed_run_counts_on_and_writes_only_its_own_lines(tmp_path):
    logger = ScalarLogger([JsonlWriter(tmp_path / "scalars.jsonl")], every_s=100.0)
    logger.absorb(EVENTS[:8])
    logger.add(EVENTS[8:])
    logger.close()
    written = lines(tmp_path / "scalars.jsonl")
    assert len(written) == 1 and written[0]["step"] == 200
    assert {k: v for k, v in written[0].items() if k not in ("step", "t")} == pytest.approx(FINAL)


def test_writers_are_chosen_by_name_and_wandb_only_when_installed(tmp_path, capsys):
    writers = make_writers(["jsonl", "stdout"], tmp_path)
    logger = ScalarLogger(writers)
    logger.add(EVENTS)
    logger.close()
    assert (tmp_path / "scalars.jsonl").is_file()
    out = capsys.readouterr().out
    assert out.startswith("step 200: ") and "fleet/intervention_rate 0.1 " in out and "robot/" not in out
    with pytest.raises(ConfigError, match=r"'log.writers\[0\]' is 'csv', not a known one"):
        load_config(None, ["log.writers=[csv]"])
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match="wandb, which is not installed"):
            load_config(None, ["log.writers=[jsonl,wandb]"])
