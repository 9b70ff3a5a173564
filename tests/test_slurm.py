"""The sweep on a real SLURM (``--launcher slurm``): a single-node cluster this module starts.

The cluster (``tests/slurmcluster.py``) lives for the module and is stopped by pid. Where SLURM
is not installed the tests skip, except under ``NORMBENCH_REQUIRE_SLURM=1`` (``.ci/run`` sets
it after installing the packages), where a missing cluster fails them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import slurmcluster

from suite.report.rows import latest_rows

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--variants", "ln,crms", "--tasks", "wikitext", "--max-steps", "12", "--timing-seconds", "0.3"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slurmcluster.Cluster]:
    why = slurmcluster.available()
    if why is not None:
        if os.environ.get("NORMBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"NORMBENCH_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    c = slurmcluster.start(tmp_path_factory.mktemp("slurm"))
    yield c
    c.stop()


def _suite(args: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "run_suite.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def test_a_slurm_sweep_records_what_a_local_one_does_and_a_cancelled_job_is_resumed(
        cluster: slurmcluster.Cluster, tmp_path: Path) -> None:
    """The same cells and config_ids as locally (trained here, inline: --inline changes no result),
    equal quality to every digit, rows naming their jobs; a cell job cancelled while it trains is a
    failed row with the scheduler's reason, and --resume runs exactly that cell again."""
    from suite.cli.main import main
    assert main([*SMALL, "--inline", "--out", str(tmp_path / "local")]) == 0
    out = tmp_path / "slurm"
    args = [*SMALL, "--launcher", "slurm", "--slurm-partition", "debug", "--out", str(out)]
    sweep = subprocess.Popen([sys.executable, str(REPO / "run_suite.py"), *args], cwd=REPO, env=cluster.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, victim = time.monotonic() + 120, None
    while victim is None and time.monotonic() < deadline:
        queue = [line.split() for line in cluster.run("squeue", "-h", "-r", "-o", "%i %T %j").splitlines()]
        victim = next((job for job, state, name in queue if state == "RUNNING" and name == "normbench-cell"
                       and job.endswith("_1")), None)   # the second cell (crms): ln stays the baseline
        time.sleep(0.3)
    assert victim is not None, "no training job started"
    cluster.run("scancel", victim)
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 1, err[-2000:]   # a cell failed; the sweep went on and wrote every row
    assert "jobs: " in err   # progress as the jobs change state
    failed = [r for r in _rows(out) if r["status"] == "error"]
    assert len(failed) == 1 and f"SLURM job {victim} ended without a result (CANCELLED" in failed[0]["message"]
    status = _suite(["status", str(out)], cluster.env)   # the table the waiting sweep's progress summarises
    line = next(x for x in status.stdout.splitlines() if "crms" in x)
    assert status.returncode == 0 and "1 done, 1 failed, 0 pending" in status.stdout
    assert victim in line and "gone (no result)" in line and "failed" in line, status.stdout
    resumed = _suite(["--resume", "--out", str(out)], cluster.env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = _rows(out)
    assert len(rows) == 3 and [r["key"] for r in rows].count(failed[0]["key"]) == 2   # only it ran again
    here, there = ({r["key"]: r for r in latest_rows(_rows(tmp_path / name))} for name in ("local", "slurm"))
    assert set(here) == set(there) and len(there) == 2
    for key, r in there.items():
        assert r["status"] == "ok", r["message"]
        assert r["config_id"] == here[key]["config_id"] and r["config_group"] == here[key]["config_group"]
        assert r["quality"] == here[key]["quality"]   # the same training, to every digit
        train, measure = r["scheduler"]["train"], r["scheduler"]["measure"]
        assert train["scheduler"] == "slurm" and train["job_id"] and train["node"]
        assert ("_" in train["job_id"]) == (key != failed[0]["key"])   # an array task; the resumed cell alone
        assert measure["job_id"] and "_" not in measure["job_id"]
        assert here[key]["scheduler"] is None
    assert there[failed[0]["key"]]["scheduler"]["train"]["job_id"] != victim   # trained again, in a new job


@pytest.mark.parametrize("extra, expected", [
    (["--slurm-partition", "nope"], "--slurm-partition nope: no such partition; sinfo shows debug"),
    (["--jobs", "2"], "under --launcher slurm every cell is its own job"),
])
def test_bad_slurm_input_is_one_line_and_exit_2_before_anything_is_submitted(
        cluster: slurmcluster.Cluster, tmp_path: Path, extra: list[str], expected: str) -> None:
    r = _suite([*SMALL, "--launcher", "slurm", *extra, "--out", str(tmp_path / "o")], cluster.env)
    assert r.returncode == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o" / "slurm").exists()


def test_without_slurm_on_path_the_error_names_the_fix(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}   # python, no SLURM commands
    r = _suite([*SMALL, "--launcher", "slurm", "--out", str(tmp_path / "o")], env)
    assert r.returncode == 2 and "sbatch" in r.stderr and "--launcher local" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
