"""RUN_DIR/run.json says what produced a run: commit, packages, command line, host, start time."""

import datetime
import json
import subprocess
from importlib import metadata

from dagger.provenance import git_state, record_start
from tests.conftest import ROOT


def test_run_json_names_the_commit_packages_command_and_host(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["dagger", "start", "--robots", "4"])
    record = record_start(tmp_path)
    assert json.loads((tmp_path / "run.json").read_text()) == record
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git"]["commit"] == head and isinstance(record["git"]["dirty"], bool)
    assert record["packages"]["torch"] == metadata.version("torch") and record["packages"]["numpy"]
    assert record["command"] == ["dagger", "start", "--robots", "4"] and record["host"]
    started = datetime.datetime.fromisoformat(record["started"])
    assert abs((datetime.datetime.now(datetime.UTC) - started).total_seconds()) < 60
    assert record["resumed"] == []


def test_a_resume_keeps_the_first_record_and_appends(tmp_path, monkeypatch):
    first = record_start(tmp_path)
    monkeypatch.setattr("sys.argv", ["dagger", "start", "--resume"])
    again = record_start(tmp_path)
    assert again["started"] == first["started"] and [r["command"] for r in again["resumed"]] == [
        ["dagger", "start", "--resume"]]


def test_a_tree_with_changes_is_dirty_and_no_checkout_has_no_commit(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path)["dirty"] is True
    assert git_state(tmp_path / "nowhere") == {"commit": None, "dirty": None}
