"""The executors' own logic, without a cluster (the real SLURM runs in tests/test_slurm.py)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from suite.launch import Launcher
from suite.sweep.executors import Local, WorkerCall, in_job, progress_line, share_job_cpus, slurm_parameters
from suite.sweep.options import Launch


def test_slurm_parameters_pass_what_was_given_and_exclusive_only_where_asked() -> None:
    launch = Launch(launcher="slurm", slurm_partition="gpu", slurm_time=30, slurm_mem_gb=16.0,
                    slurm_setup=["module load cuda"])
    assert slurm_parameters(launch, exclusive=True) == {
        "slurm_partition": "gpu", "timeout_min": 30, "mem_gb": 16.0, "slurm_setup": ["module load cuda"],
        "slurm_array_parallelism": 256, "slurm_exclusive": True}
    assert "slurm_exclusive" not in slurm_parameters(launch, exclusive=False)
    assert "slurm_partition" not in slurm_parameters(Launch(), exclusive=False)


def test_a_cell_runs_in_its_jobs_tasks_never_under_a_nested_torchrun() -> None:
    call = WorkerCall("ln", "suite.sweep.cell", "/x/spec.json", Launcher(mode="subprocess"))
    assert in_job(call).launcher.mode == "inline" and call.launcher.mode == "subprocess"
    ddp = WorkerCall("ln", "suite.sweep.cell", "/x/spec.json", Launcher(mode="torchrun", nproc=2))
    assert in_job(ddp).launcher == Launcher(mode="inline", nproc=1)   # each task is one of its processes


def test_a_ddp_cell_is_one_task_per_process_and_waiting_jobs_name_what_they_wait_for() -> None:
    launch = Launch(launcher="slurm", slurm_gpus_per_node=4)
    shape = slurm_parameters(launch, exclusive=False, nodes=2, tasks_per_node=4)
    assert shape["nodes"] == 2 and shape["tasks_per_node"] == 4 and shape["gpus_per_node"] == 4
    assert shape["slurm_srun_args"] == ["--kill-on-bad-exit=1"]
    one = slurm_parameters(launch, exclusive=False)
    assert "nodes" not in one and "tasks_per_node" not in one and "slurm_srun_args" not in one
    final = slurm_parameters(launch, exclusive=True, after=["12", "15"])
    assert final["slurm_additional_parameters"] == {"dependency": "afterany:12:15"}


@dataclass
class _Job:
    job_id: str


def test_progress_counts_and_names_the_jobs_still_waiting() -> None:
    jobs = [_Job("7_0"), _Job("7_1"), _Job("7_2"), _Job("8")]
    line = progress_line(jobs, ["ln", "un", "crms", "measure"], {"7_1": "RUNNING", "8": "PENDING"},
                         {0: ("", None), 2: (None, "SLURM job 7_2 ended without a result (CANCELLED)")})
    assert line == "jobs: 1 pending, 1 running, 1 done, 1 failed (un 7_1 RUNNING, measure 8 PENDING)"


def test_local_runs_jobs_calls_at_once_and_reports_each_as_it_ends(tmp_path: Path) -> None:
    running, peak, lock = [0], [0], threading.Lock()

    class Call(WorkerCall):
        def __call__(self) -> str:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.2)
            with lock:
                running[0] -= 1
            return "" if self.name != "bad" else "process exited with status 1"

    calls = [Call(n, "m", str(tmp_path / n), Launcher()) for n in ("a", "bad", "c", "d")]
    seen: list[tuple[str, str]] = []
    out = Local(jobs=2).train(calls, done=lambda n, err: seen.append((n, err)))
    assert list(out) == ["a", "bad", "c", "d"] and out["bad"] == "process exited with status 1"
    assert peak[0] == 2 and sorted(seen) == sorted(out.items())


def test_a_jobs_tasks_share_the_cpus_slurm_gave_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SLURM_CPUS_ON_NODE", "8")
        monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
        share_job_cpus()
        assert torch.get_num_threads() == 4
        monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "3(x2)")   # SLURM's compressed form
        share_job_cpus()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(before)
        monkeypatch.delenv("SLURM_CPUS_ON_NODE")
        share_job_cpus()   # outside a job: left alone
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


def test_a_job_the_scheduler_stopped_fails_at_once_and_one_that_completed_gets_the_grace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both jobs have left the queue without a result file: the cancelled one is a failure on the first
    look; the completed one (its file may still be on its way over a shared filesystem) only after
    ``RESULT_GRACE_S``."""
    import suite.sweep.executors as ex

    @dataclass
    class Paths:
        result_pickle: Path

    @dataclass
    class Job:
        job_id: str
        paths: Paths

    ended = {"5": ("CANCELLED", "None"), "6": ("COMPLETED", "None")}
    clock = [0.0]
    monkeypatch.setattr(ex, "queue_states", lambda ids: {})
    monkeypatch.setattr(ex, "ended_state", lambda job_id: ended[job_id])
    monkeypatch.setattr(ex.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(ex.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    seen: dict[int, float] = {}
    slurm = ex.Slurm(Launch(launcher="slurm"), tmp_path, poll_s=1.0)
    jobs = [Job(j, Paths(tmp_path / f"{j}.pkl")) for j in ("5", "6")]
    out = slurm._wait(jobs, ["ln", "crms"], lambda i, value, failure: seen.setdefault(i, clock[0]))
    assert out == [(None, "SLURM job 5 ended without a result (CANCELLED)"),
                   (None, "SLURM job 6 ended without a result (COMPLETED)")]
    assert seen[0] == 0.0 and seen[1] > ex.RESULT_GRACE_S
