"""A few trials of the fault benchmark: each process of a `dagger start` run on Ray killed once."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_one_kill_of_each_process_loses_and_duplicates_no_acknowledged_human_step():
    # 8 s budgets: each process is still killed mid-run (0-2.7 s after the first takeover, operators mid-takeover),
    # and hundreds of human steps are acknowledged; most of a trial's time is starting its own Ray and `dagger start`,
    # so the four trials (each with its own Ray, run directory and kill marker) run side by side
    # storage: the buffer's log cannot grow for 4 s (its file-size limit: as root); hang: the learner SIGSTOPped for
    # 12 s, past supervisor.HUNG_S (it is killed and Ray restarts it)
    faults = "robot,group,buffer,learner,driver,hang" + (",storage" if os.geteuid() == 0 else "")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "faults.py"), "--trials", "1", "--seconds", "8",
                          "--parallel", "7", "--faults", faults, "--hang-s", "12", "--full-s", "4"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[1:]}
    assert set(rows) == set(faults.split(",")), out.stdout  # group: two robots, one process
    for fault, (trials, acked, found, missing, duplicated, corrupt, continued, report, _during) in rows.items():
        assert trials == "1", out.stdout
        assert int(acked) > 0, f"{fault}: no human step was acknowledged before the kill\n{out.stdout}"
        assert (found, missing, duplicated, corrupt) == (acked, "0", "0", "0"), f"{fault}\n{out.stdout}"
        assert continued == "1/1", f"{fault}: the run did not finish its budget\n{out.stdout}"
        if fault in ("hang", "storage"):
            assert report == "1/1", f"{fault}: the report's stored human steps are not the log's\n{out.stdout}"
    assert int(rows["hang"][-1].split("/")[0]) > 0, f"the fleet stood still while the learner hung\n{out.stdout}"
    if "storage" in rows:  # robots hold while a correction cannot be stored
        assert rows["storage"][-1].split("/")[0] == "0", out.stdout
