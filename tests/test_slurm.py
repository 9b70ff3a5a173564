"""The sweep on a real SLURM (``--launcher slurm``): a single-node cluster this module starts.

The cluster (``tests/slurmcluster.py``) lives for the module and is stopped by pid. Where SLURM
is not installed the tests skip, except under ``NORMBENCH_REQUIRE_SLURM=1`` (``.ci/run`` sets
it after installing the packages), where a missing cluster fails them.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import slurmcluster

from conftest import start_cli

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--variants", "ln", "--tasks", "wikitext", "--max-steps", "12", "--timing-seconds", "0.3"]
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


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def _running(cluster: slurmcluster.Cluster, deadline: float) -> str:
    """The id of the training job once it runs."""
    while time.monotonic() < deadline:
        queue = [line.split() for line in cluster.run("squeue", "-h", "-r", "-o", "%i %T %j").splitlines()]
        job = next((j for j, state, name in queue if state == "RUNNING" and name == "normbench-cell"), None)
        if job is not None:
            return job
        time.sleep(0.2)
    raise AssertionError("no training job started")


def _checkpointed(folder: Path, deadline: float, resumed: bool = False) -> int:
    """Wait until both ranks hold a checkpoint of one step (the save is over on every rank: no previous
    file is left), of a run that continued from an earlier one where ``resumed``; that step."""
    import torch
    while time.monotonic() < deadline:
        docs = []
        for rank in (0, 1):
            try:
                docs.append(torch.load(folder / f"rank-{rank}.pt", map_location="cpu", weights_only=True))
            except (FileNotFoundError, EOFError, RuntimeError):   # not there yet
                break
        if (len(docs) == 2 and docs[0]["step"] == docs[1]["step"] and not list(folder.glob("rank-*.prev.pt"))
                and (not resumed or docs[0]["progress"]["resumed_from"])):
            return int(docs[0]["step"])
        time.sleep(0.1)
    raise AssertionError(f"the ranks wrote no common checkpoint in {folder}")


def _requeue(cluster: slurmcluster.Cluster, job: str, deadline: float) -> None:
    """Preempt ``job`` as SLURM does with requeue, let it start again soon, and return once it runs
    again (its earlier processes are gone by then). SLURM holds a requeued job back for two minutes
    (reason BeginTime), set once the job has left COMPLETING: wait for that, then move its start to two
    seconds from now. Not to now: slurmd refuses a job whose credential is from the second in which the
    job's previous credential was revoked ("Job credential revoked"), and the job then fails."""
    cluster.run("scontrol", "requeue", job)
    seen: list[str] = []
    while time.monotonic() < deadline:
        state = cluster.run("squeue", "-h", "-r", "-o", "%T %r", "-j", job, check=False).split()
        if not seen or seen[-1] != " ".join(state):
            seen.append(" ".join(state))
        if state[:1] == ["RUNNING"]:
            return
        if state[:1] == ["PENDING"] and "BeginTime" in state:
            cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now+2", check=False)
        time.sleep(0.1)
    raise AssertionError(f"the requeued job {job} did not run again (states seen: {seen})")


def _status(out: Path) -> str:
    """``run_suite.py status OUT``, in this process (its clients find the cluster through SLURM_CONF)."""
    from suite.sweep.status import render, run_status
    return render(run_status(out), out)


def test_a_ddp_cell_through_slurm_survives_requeue_and_cancel_and_a_detached_resume_completes_the_run(
        cluster: slurmcluster.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A two-process DDP cell, a two-task job (TCP rendezvous), trained as ``--nproc-per-node 2`` trains
    it here under torchrun: the same config_id and the same quality to every digit, though its job was
    first requeued once it had checkpointed (a preemption: the same job runs again and continues from
    the checkpoint), then cancelled while it trained on (a failed row with the scheduler's reason, and
    no measurement job for a group with nothing trained). A detached ``--resume`` submits exactly that
    cell, which continues from its newest checkpoint, and a final job that measures it and writes its
    row: the cell ends recorded once ok, with both continuations in its row."""
    from suite.cli.main import main
    out = tmp_path / "slurm"
    args = [*DDP, "--launcher", "slurm", "--slurm-partition", "debug", "--slurm-cpus-per-task", "1", "--out", str(out)]
    sweep = start_cli(*args, env={**cluster.env, "NORMBENCH_PACE_S": "0.4"}, folder=tmp_path / "slurm-cli",
                      every_core=True)
    # the reference: torchrun here, beside the cluster's jobs (it uses the cores their waits leave idle)
    reference = start_cli(*DDP, "--out", str(tmp_path / "local"), folder=tmp_path / "local-cli", every_core=True)
    deadline = time.monotonic() + 240
    checkpoint = out / "cells" / "wikitext-ln-s0" / "checkpoint"
    job = _running(cluster, deadline)
    _checkpointed(checkpoint, deadline)
    _requeue(cluster, job, deadline)
    _checkpointed(checkpoint, deadline, resumed=True)   # the job, run again, continued and saved once more
    cluster.run("scancel", job)
    ended = sweep.wait(timeout=300)
    assert ended.returncode == 1, ended.stderr[-2000:]   # the cell failed; the sweep recorded it and ended
    assert "jobs: " in ended.stderr   # progress as the job changes state
    failed, = _rows(out)
    assert failed["status"] == "error", failed["message"]
    assert f"SLURM job {job} ended without a result (CANCELLED" in failed["message"]   # the requeued job, again
    assert [r["kind"] for r in map(json.loads, (out / "slurm" / "jobs.jsonl").read_text().splitlines())] == ["cell"]

    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])   # this process's clients: the test cluster
    status = _status(out)   # the table the waiting sweep's progress summarises
    line = next(x for x in status.splitlines() if "wikitext/ln/s0" in x)
    assert "0 done, 1 failed, 0 pending" in status
    assert job in line and "gone (no result)" in line and "failed" in line, status

    capsys.readouterr()
    assert main(["--resume", "--out", str(out), "--detach"]) == 0
    assert "run_suite.py status" in capsys.readouterr().err
    final = json.loads((out / "slurm" / "detached.json").read_text())["job_id"]
    assert f"assemble job {final}" in _status(out)
    assert main(["--resume", "--out", str(out)]) == 2   # its final job owns the run meanwhile
    busy = capsys.readouterr().err.strip()
    assert f"final job {final} is still queued" in busy and len(busy.splitlines()) == 1, busy
    ran = reference.wait(timeout=max(1.0, deadline - time.monotonic()))
    assert ran.returncode == 0, ran.stderr[-2000:]
    while final in cluster.run("squeue", "-h", "-o", "%i") and time.monotonic() < deadline + 150:
        time.sleep(0.5)
    status = _status(out)
    assert "1 done, 0 failed, 0 pending" in status and f"assemble job {final}" in status, status
    rows = _rows(out)
    assert len(rows) == 2 and rows[0] == failed   # only the failed cell ran again; its failure stays on record
    ln, local = rows[1], _rows(tmp_path / "local")[0]
    assert ln["status"] == "ok", ln["message"]
    assert ln["scheduler"]["train"]["job_id"] not in (job, final) and ln["scheduler"]["measure"]["job_id"] == final
    resumed = ln["train"]["resumed_from"]   # after the requeue, then after the cancel: never from step 0
    assert len(resumed) == 2 and 0 < resumed[0] < resumed[1] <= 12 and ln["train"]["steps"] == 12, ln["train"]
    assert ln["distributed"]["world_size"] == 2 == local["distributed"]["world_size"]
    assert ln["config_id"] == local["config_id"] and ln["quality"] == local["quality"]   # to every digit
    assert local["scheduler"] is None and not local["train"].get("resumed_from")
    assert (out / "leaderboard.md").exists()


def test_a_groups_cells_are_one_array_that_runs_as_throttled_and_a_failing_cell_is_its_reason(
        cluster: slurmcluster.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cells of a group (a light test worker, not a training cell: the array is the point) go in as
    one array job; ``--slurm-array-parallelism 1`` runs its tasks one after the other; each task's
    outcome comes back by name, the failing one's as its reason."""
    from suite.launch import Launcher
    from suite.sweep.executors import Slurm, WorkerCall, newest_jobs
    from suite.sweep.options import Launch
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    calls = []
    for name, action in (("a", "nap"), ("c", "exit")):
        (tmp_path / name).mkdir()
        spec = tmp_path / name / "spec.json"
        spec.write_text(json.dumps({"action": action, "seconds": 1.0, "out": str(tmp_path / name / "seen.json")}))
        calls.append(WorkerCall(name, "launch_workers", str(spec), Launcher(mode="subprocess")))
    launch = Launch(launcher="slurm", slurm_partition="debug", slurm_cpus_per_task=1, slurm_array_parallelism=1)
    slurm = Slurm(launch, tmp_path / "slurm", poll_s=0.2)
    assert slurm.train(calls) == {"a": "", "c": "worker exited with status 3"}
    jobs = newest_jobs(tmp_path / "slurm" / "jobs.jsonl")
    array = {j["job_id"].split("_")[0] for j in jobs.values()}
    assert len(array) == 1 and sorted(j["job_id"].split("_")[1] for j in jobs.values()) == ["0", "1"], jobs
    first, second = sorted((json.loads((tmp_path / n / "seen.json").read_text()) for n in "ac"),
                           key=lambda seen: seen["start"])
    assert first.get("end", first["start"]) <= second["start"]   # one task at a time


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
