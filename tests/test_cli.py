"""`dagger` as a user runs it: bad input gives one line and exit code 2, never a traceback."""

import json
import os
import signal
import subprocess
import sys

import pytest

from dagger.events import read_events
from tests.conftest import ROOT, run_dagger, wait_until


def dagger(*args, cwd=None):
    return run_dagger(*args, cwd=cwd, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--robots", "0"], "'robots' must be in [1, 1000]"),
    (["--robots", "100000"], "'robots' must be in [1, 1000]"),
    (["robots=" + "9" * 5000], "cannot read a value"),
    (["--resume"], "holds no run to continue (no events.jsonl, checkpoints or segments)"),
    (["--init-from", str(ROOT / "README.md")], "not a dagger checkpoint"),
    (["--screenshot", "/nonexistent/console.png"], "folder /nonexistent does not exist"),
    (["--address", "127.0.0.1:1"], "nothing answers at 127.0.0.1:1"),
    (["--address", "headnode"], "'headnode' is not a Ray address"),
    (["--task", "reachr"], "did you mean 'reacher'"),
    (["--gate", "ensembel"], "did you mean 'ensemble'"),
    (["gate.treshold=0.1"], "did you mean 'gate.threshold'"),
    (["learner.batch_size=big"], "expected int, got str"),
    (["--config", "missing.yaml"], "missing.yaml: cannot read config"),
    (["--operator", "spacemouse"], "no SpaceMouse at index 0"),
    (["--operator", "gamepad"], "gamepad 0: no such game controller"),
    (["--operator", "joystick"], "valid: scripted, gamepad, spacemouse, keyboard"),
    (["--operator", "browser", "--in-process"], "browser and leader operators stamp their readings in real time"),
    (["--operator", "browser", "--operator-listen", "8765"], "'browser.listen' must be host:port"),
    (["--operator", "browser", "browser.tls_cert=/nonexistent.pem"], "cannot serve the operator page"),
])
def test_bad_start_arguments(tmp_path, args, message):
    result = dagger("start", "--run-dir", str(tmp_path / "run"), *args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run").exists()


def test_a_non_empty_run_dir_is_refused_and_left_alone(tmp_path):
    (tmp_path / "events.jsonl").write_text('{"ev": "run_start", "t": 1}\n')
    result = dagger("start", "--run-dir", str(tmp_path))
    assert result.returncode == 2 and "not empty" in result.stderr and "--resume" in result.stderr
    assert (tmp_path / "events.jsonl").read_text() == '{"ev": "run_start", "t": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


def test_report_names_a_corrupt_event_line(tmp_path):
    (tmp_path / "events.jsonl").write_text('{"ev": "run_start", "t": 1}\n{"ev": "segm\n')
    result = dagger("report", str(tmp_path), "--json")
    assert result.returncode == 2 and "events.jsonl:2" in result.stderr and "Traceback" not in result.stderr


def test_report_on_a_missing_run_dir(tmp_path):
    result = dagger("report", str(tmp_path / "nope"))
    assert result.returncode == 2 and "not found" in result.stderr


def test_in_process_start_writes_a_complete_run(tmp_path):
    run = tmp_path / "run"
    result = dagger("start", "--in-process", "--task", "point", "--robots", "2", "--steps", "600",
                    "--run-dir", str(run), "demos=2", "learner.pretrain_updates=20", "learner.batch_size=32",
                    "gate.threshold=0.002")
    assert result.returncode == 0, result.stderr
    assert {"events.jsonl", "config.yaml", "run.json", "summary.json", "segments", "report.md", "report.html",
            "plots"} <= {p.name for p in run.iterdir()}
    command = json.loads((run / "run.json").read_text())["command"]
    assert command[-2:] == ["learner.batch_size=32", "gate.threshold=0.002"]
    assert (run / "plots" / "intervention.png").stat().st_size > 5000
    report = json.loads(dagger("report", str(run), "--json").stdout)
    assert report == json.loads((run / "summary.json").read_text())
    assert "run summary" in result.stdout and str(run) in result.stdout


def test_resume_after_a_corrupt_frame_reports_it_and_keeps_every_good_segment(tmp_path):
    from buffers.codec import decode_segment
    from buffers.segment_log import SegmentLog, file_name
    from workers.robot import INCARNATION_STRIDE

    run = tmp_path / "run"
    args = ["start", "--in-process", "--task", "point", "--robots", "2", "--steps", "400", "--run-dir", str(run),
            "demos=2", "learner.pretrain_updates=20", "learner.batch_size=32", "gate.threshold=0.002"]
    assert dagger(*args).returncode == 0
    log = run / "segments" / file_name(0)
    before = [decode_segment(p) for p in SegmentLog.read(run / "segments")]
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0xFF
    log.write_bytes(bytes(data))

    resumed = dagger(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # one warning for the damaged frame, one counting what the run lost with it
    warnings = [line for line in resumed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2, warnings
    assert [w for w in warnings if f"{log}@" in w and "bad CRC" in w], warnings
    assert [w for w in warnings if "1 frames" in w and "the report leaves them out" in w], warnings

    after = [decode_segment(p) for p in SegmentLog.read(run / "segments")]
    keys = [s.key for s in after]
    assert len(keys) == len(set(keys))
    assert len({s.key for s in before} - set(keys)) == 1  # only the damaged frame is gone
    assert any(s.seq >= INCARNATION_STRIDE for s in after if s.robot >= 0)
    report = json.loads(dagger("report", str(run), "--json").stdout)
    assert report["steps"] == 800 - sum(len(s) for s in before if s.key not in keys)  # the budgets, less what was lost


def test_a_run_dir_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = dagger("start", "--in-process", "--task", "point", "--run-dir", str(tmp_path / "file" / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "cannot write there (Not a directory)" in result.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_ends_cleanly_and_exits_128_plus_the_signal(tmp_path, sig, code):
    run = tmp_path / "run"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    # A shell's background job (`make test &`) starts with SIGINT ignored, and Python then never turns it into
    # KeyboardInterrupt: the child gets the default disposition back, as a terminal's foreground command has.
    proc = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "start", "--in-process", "--task", "point",
                             "--steps", "1000000", "--run-dir", str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_until(lambda: (run / "events.jsonl").is_file() and b'"ev":"segment"' in (run / "events.jsonl").read_bytes(),
               timeout=120, what="the run's first segment")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in err, err[-2000:]
    ends = [e for e in read_events(run / "events.jsonl") if e["ev"] == "run_end"]
    assert [e["reason"] for e in ends] == ["interrupted"] and (run / "summary.json").is_file()


def test_an_operator_page_address_in_use_is_one_line_before_anything_is_written(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = dagger("start", "--run-dir", str(tmp_path / "run"), "--operator", "browser", "--operator-listen",
                        address)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert f"browser.listen {address}: cannot serve the operator page" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_a_setting_may_be_given_as_a_flag_with_its_dotted_key():
    result = dagger("config", "--gate.threshold=0.02", "--robot.speed=2")
    assert result.returncode == 0, result.stderr
    assert "threshold: 0.02" in result.stdout and "speed: 2.0" in result.stdout
    result = dagger("config", "--gate.treshold=0.02")
    assert result.returncode == 2 and "did you mean 'gate.threshold'" in result.stderr
