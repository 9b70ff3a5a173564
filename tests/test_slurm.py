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

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--variants", "ln,crms", "--tasks", "wikitext", "--max-steps", "12", "--timing-seconds", "0.3"]
#: two processes per cell on the cluster's two cores, a checkpoint every 3 of the 12 steps
DDP = [*SMALL, "--nproc-per-node", "2", "--threads", "1", "--checkpoint-every", "3"]


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


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``run_suite.py ARGS`` in a process of its own while the test goes on; its output goes to ``log``."""
    with log.open("wb") as f:
        return subprocess.Popen([sys.executable, str(REPO / "run_suite.py"), *args], cwd=REPO, env=env,
                                stdout=f, stderr=subprocess.STDOUT, preexec_fn=slurmcluster.every_core)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def _queued(cluster: slurmcluster.Cluster, suffix: str, deadline: float) -> str:
    """The id of the training job (array task ``*_suffix``) once it runs."""
    while time.monotonic() < deadline:
        queue = [line.split() for line in cluster.run("squeue", "-h", "-r", "-o", "%i %T %j").splitlines()]
        job = next((j for j, state, name in queue if state == "RUNNING" and name == "normbench-cell"
                    and j.endswith(suffix)), None)
        if job is not None:
            return job
        time.sleep(0.2)
    raise AssertionError(f"no training job *{suffix} started")


def _requeue(cluster: slurmcluster.Cluster, job: str) -> None:
    """Preempt ``job`` as SLURM does with requeue, and let it start again at once. SLURM holds a
    requeued job back for two minutes (reason BeginTime), set once the job has left COMPLETING: wait
    for that, then move its start to now."""
    cluster.run("scontrol", "requeue", job)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = cluster.run("squeue", "-h", "-r", "-o", "%T %r", "-j", job, check=False).split()
        if state[:1] == ["RUNNING"] or (state[:1] == ["PENDING"] and "BeginTime" not in state):
            return
        if state[:1] == ["PENDING"]:
            cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
        time.sleep(0.1)
    raise AssertionError(f"the requeued job {job} did not become eligible to start again")


def _status(out: Path) -> str:
    """``run_suite.py status OUT``, in this process (its clients find the cluster through SLURM_CONF)."""
    from suite.sweep.status import render, run_status
    return render(run_status(out), out)


def test_ddp_cells_through_slurm_survive_requeue_and_cancel_and_a_detached_resume_completes_the_run(
        cluster: slurmcluster.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two-process DDP cells, each a two-task job (TCP rendezvous), trained as ``--nproc-per-node 2``
    trains them here under torchrun: the same config_id and the same quality to every digit. The
    ``ln`` job is requeued once it has checkpointed (a preemption): it continues from its checkpoint
    and still ends with the uninterrupted quality. The ``crms`` job is cancelled while it trains: a
    failed row with the scheduler's reason. A detached ``--resume`` then submits exactly that cell and
    a final job that writes its row; every cell ends recorded once, ok."""
    from suite.cli.main import main
    here = _start([*DDP, "--variants", "ln", "--out", str(tmp_path / "local")], dict(os.environ),
                  tmp_path / "local.log")   # torchrun, here, beside the cluster's jobs
    out = tmp_path / "slurm"
    args = [*DDP, "--launcher", "slurm", "--slurm-partition", "debug", "--slurm-cpus-per-task", "1", "--out", str(out)]
    sweep = _start(args, {**cluster.env, "NORMBENCH_PACE_S": "0.4"}, tmp_path / "slurm.log")
    deadline = time.monotonic() + 240
    checkpoint = out / "cells" / "wikitext-ln-s0" / "checkpoint"
    preempted = _queued(cluster, "_0", deadline)
    while not (checkpoint / "rank-1.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    _requeue(cluster, preempted)
    victim = _queued(cluster, "_1", deadline)
    cluster.run("scancel", victim)
    sweep.wait(timeout=300)
    err = (tmp_path / "slurm.log").read_text()
    assert sweep.returncode == 1, err[-2000:]   # a cell failed; the sweep went on and wrote every row
    assert "jobs: " in err   # progress as the jobs change state
    assert here.wait(timeout=300) == 0, (tmp_path / "local.log").read_text()[-2000:]
    rows = {r["variant"]: r for r in _rows(out)}
    assert rows["crms"]["status"] == "error", rows["crms"]["message"]
    assert f"SLURM job {victim} ended without a result (CANCELLED" in rows["crms"]["message"]
    ln, local = rows["ln"], _rows(tmp_path / "local")[0]
    assert ln["status"] == "ok" and ln["train"]["resumed_from"], ln["train"]   # continued, not from step 0
    assert 0 < ln["train"]["resumed_from"][0] < 12 and ln["train"]["steps"] == 12
    assert ln["scheduler"]["train"]["job_id"] == preempted   # the same job, run again
    assert ln["distributed"]["world_size"] == 2 == local["distributed"]["world_size"]
    assert ln["config_id"] == local["config_id"] and ln["quality"] == local["quality"]   # to every digit
    assert local["scheduler"] is None and not local["train"].get("resumed_from")

    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])   # this process's clients: the test cluster
    status = _status(out)   # the table the waiting sweep's progress summarises
    line = next(x for x in status.splitlines() if "crms" in x)
    assert "1 done, 1 failed, 0 pending" in status
    assert victim in line and "gone (no result)" in line and "failed" in line, status

    capsys.readouterr()
    assert main(["--resume", "--out", str(out), "--detach"]) == 0
    assert "run_suite.py status" in capsys.readouterr().err
    final = json.loads((out / "slurm" / "detached.json").read_text())["job_id"]
    assert f"assemble job {final}" in _status(out)
    assert main(["--resume", "--out", str(out)]) == 2   # its final job owns the run meanwhile
    busy = capsys.readouterr().err.strip()
    assert f"final job {final} is still queued" in busy and len(busy.splitlines()) == 1, busy
    while final in cluster.run("squeue", "-h", "-o", "%i") and time.monotonic() < deadline + 150:
        time.sleep(0.5)
    status = _status(out)
    assert "2 done, 0 failed, 0 pending" in status and f"assemble job {final}" in status, status
    rows = _rows(out)
    assert len(rows) == 3 and [r["variant"] for r in rows].count("crms") == 2   # only it ran again
    crms = rows[-1]
    assert crms["variant"] == "crms" and crms["status"] == "ok", crms["message"]
    assert crms["scheduler"]["train"]["job_id"] != victim and crms["scheduler"]["measure"]["job_id"] == final
    assert (out / "leaderboard.md").exists()


@pytest.mark.parametrize("extra, expected", [
    (["--slurm-partition", "nope"], "--slurm-partition nope: no such partition; sinfo shows debug"),
    (["--jobs", "2"], "under --launcher slurm every cell is its own job"),
])
def test_bad_slurm_input_is_one_line_and_exit_2_before_anything_is_submitted(
        cluster: slurmcluster.Cluster, tmp_path: Path, extra: list[str], expected: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from suite.cli.main import main
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    assert main([*SMALL, "--launcher", "slurm", *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o" / "slurm").exists()


def test_without_slurm_on_path_the_error_names_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from suite.cli.main import main
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))   # python, no SLURM commands
    assert main([*SMALL, "--launcher", "slurm", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "sbatch" in err and "--launcher local" in err and len(err.splitlines()) == 1, err
