"""Where the sweep's units of work run: this machine, or a SLURM cluster (``--launcher``).

The runner hands an executor two kinds of unit and never asks which executor it is:

- ``train(calls)``: the training cells of a group, each a ``WorkerCall`` (a worker module run on
  its spec file by a ``suite.launch.Launcher``); the answer is, per cell, '' when its process
  ended normally, else why not (the cell's own outcome is its ``result.json``, read by the runner);
- ``measure(fn, *args)``: one function that measures a whole (task, seed) group (its memory probes
  and interleaved timing groups), so every ratio to the baseline is taken in one place.

``Local`` is today's behaviour: cells in threads of this process (``--jobs`` at once), each
started as its own worker process, and measurement right here. ``Slurm`` submits through
submitit: the cells of a group as one job array, the measurement as one job (``--exclusive`` by
default, so nothing else shares the node while it is timed). It waits for each job by its result
file and by ``squeue``, not by ``sacct`` (a cluster without accounting answers nothing there),
shows progress as jobs change state, and turns a job that ended without a result (cancelled,
out of time, node failure) into that unit's failure with the scheduler's reason.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from suite import jsonio
from suite.env import now_iso
from suite.errors import UsageError
from suite.launch import Launcher
from suite.sweep.options import Launch

T = TypeVar("T")
#: what the SLURM executor submitted, one JSON line per job (in the run's ``slurm/`` folder)
JOBS_FILE = "jobs.jsonl"
#: seconds a job may be gone from the queue before its missing result file counts as a failure
#: (a shared filesystem can show a file a little after the job that wrote it has ended)
RESULT_GRACE_S = 15.0


@dataclass(frozen=True)
class WorkerCall:
    """Run worker ``module`` on ``spec`` with ``launcher``: one unit of training."""
    name: str                  # what progress lines call it (the variant)
    module: str
    spec: str
    launcher: Launcher

    def __call__(self) -> str:
        return self.launcher.run(self.module, Path(self.spec))


class Executor(Protocol):
    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        """Run every call; '' or why it failed, by call name (``done`` is told of each as it ends)."""
        ...

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` as one unit; raises ``UnitFailed`` when the unit never returned."""
        ...


class UnitFailed(RuntimeError):
    """A unit of work that ended without a result (its job was cancelled, timed out, ...)."""


def each(jobs: int, fn: Callable[[str], T], names: list[str],
         done: Callable[[str, T], None] | None = None) -> dict[str, T]:
    """``fn`` of every name, ``jobs`` at once (each call starts and waits for one worker process);
    ``done`` is told of each result as it comes. The results keep the order of ``names``."""
    out: dict[str, T] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(names)))) as pool:
        running = {pool.submit(fn, n): n for n in names}
        for future in as_completed(running):
            out[running[future]] = future.result()
            if done is not None:
                done(running[future], out[running[future]])
    return {n: out[n] for n in names}


@dataclass
class Local:
    """This machine: ``jobs`` cells at once, measurement in this process."""
    jobs: int = 1

    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        by_name = {c.name: c for c in calls}
        return each(self.jobs, lambda n: by_name[n](), list(by_name), done=done)

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)


# -- SLURM ------------------------------------------------------------------------------------
def slurm_parameters(launch: Launch, *, exclusive: bool) -> dict[str, object]:
    """The ``--slurm-*`` options as submitit's executor parameters (those given; ``--exclusive``
    only where asked)."""
    given: dict[str, object] = {
        "slurm_partition": launch.slurm_partition, "timeout_min": launch.slurm_time,
        "gpus_per_node": launch.slurm_gpus_per_node, "cpus_per_task": launch.slurm_cpus_per_task,
        "mem_gb": launch.slurm_mem_gb, "slurm_account": launch.slurm_account, "slurm_qos": launch.slurm_qos,
        "slurm_constraint": launch.slurm_constraint, "slurm_setup": list(launch.slurm_setup) or None,
        "slurm_array_parallelism": launch.slurm_array_parallelism, "slurm_exclusive": True if exclusive else None}
    return {k: v for k, v in given.items() if v is not None}


def check_slurm(partition: str | None) -> None:
    """Before anything is submitted: SLURM's commands are here and the partition exists (one line
    naming the fix otherwise)."""
    missing = [c for c in ("sbatch", "squeue", "sinfo") if shutil.which(c) is None]
    if missing:
        raise UsageError(f"--launcher slurm needs SLURM's commands, but {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not on PATH; run on a cluster's login node "
                         f"(or load its module), or use --launcher local")
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        raise UsageError(f"--launcher slurm: sinfo cannot reach the cluster ({reason}); check SLURM_CONF "
                         f"and that slurmctld runs, or use --launcher local")
    partitions = [p.rstrip("*") for p in out.stdout.split()]
    if partition is not None and partition not in partitions:
        raise UsageError(f"--slurm-partition {partition}: no such partition; sinfo shows "
                         f"{', '.join(partitions) or 'none'}")


def in_job(call: WorkerCall) -> WorkerCall:
    """A call as its job runs it: a one-process worker in the job's own process (a job is already a
    fresh process of its own; a second interpreter would only import torch again), torchrun as is."""
    if call.launcher.mode != "subprocess":
        return call
    return dataclasses.replace(call, launcher=dataclasses.replace(call.launcher, mode="inline"))


def run_call(call: WorkerCall) -> str:
    """What a training job of an array runs: its call (submitit maps it over the calls)."""
    return call()


class Slurm:
    """Units as SLURM jobs through submitit; their files under ``folder`` (the run's ``slurm/``)."""

    def __init__(self, launch: Launch, folder: Path, poll_s: float = 1.0) -> None:
        self.launch, self.folder, self.poll_s = launch, Path(folder), poll_s

    def _executor(self, kind: str, exclusive: bool) -> Any:
        import submitit
        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        ex.update_parameters(name=f"normbench-{kind}", **slurm_parameters(self.launch, exclusive=exclusive))
        return ex

    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        if not calls:
            return {}
        ex = self._executor("cell", exclusive=False)
        calls = [in_job(c) for c in calls]
        jobs = ex.map_array(run_call, calls) if len(calls) > 1 else [ex.submit(run_call, calls[0])]
        self._record("cell", [Path(c.spec).parent.name for c in calls], jobs)
        out: dict[str, str] = {}

        def ended(i: int, value: Any, failure: str | None) -> None:
            out[calls[i].name] = failure if failure is not None else str(value)
            if done is not None:
                done(calls[i].name, out[calls[i].name])

        self._wait(jobs, [c.name for c in calls], ended)
        return {c.name: out[c.name] for c in calls}

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        job = self._executor("measure", exclusive=self.launch.slurm_exclusive).submit(fn, *args)
        self._record("measure", [label], [job])
        (value, failure), = self._wait([job], [label])
        if failure is not None:
            raise UnitFailed(failure)
        return value

    def _record(self, kind: str, units: list[str], jobs: list[Any]) -> None:
        """Append what was submitted to ``jobs.jsonl`` (read by ``run_suite.py status``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / JOBS_FILE, "a") as f:
            for unit, job in zip(units, jobs, strict=True):
                f.write(jsonio.dumps({"kind": kind, "unit": unit, "job_id": job.job_id,
                                      "result": str(job.paths.result_pickle), "submitted_at": now_iso()}) + "\n")

    def _wait(self, jobs: list[Any], names: list[str],
              ended: Callable[[int, Any, str | None], None] | None = None) -> list[tuple[Any, str | None]]:
        """Each job's (result, None) or (None, why it has none), waiting until every job is over."""
        results: dict[int, tuple[Any, str | None]] = {}
        gone_since: dict[int, float] = {}
        last = ""
        while len(results) < len(jobs):
            states = queue_states([j.job_id for j in jobs])
            for i, job in enumerate(jobs):
                if i in results:
                    continue
                if Path(job.paths.result_pickle).exists():
                    results[i] = _outcome(job)
                elif job.job_id in states:   # pending or running (again, after a requeue)
                    gone_since.pop(i, None)
                    continue
                elif time.monotonic() - gone_since.setdefault(i, time.monotonic()) > RESULT_GRACE_S:
                    results[i] = (None, f"SLURM job {job.job_id} ended without a result "
                                        f"({ended_reason(job.job_id)})")
                else:
                    continue
                if ended is not None:
                    ended(i, *results[i])
            line = progress_line(jobs, names, states, results)
            if line != last:
                print(f"  {line}", file=sys.stderr, flush=True)
                last = line
            if len(results) < len(jobs):
                time.sleep(self.poll_s)
        return [results[i] for i in range(len(jobs))]


def _outcome(job: Any) -> tuple[Any, str | None]:
    try:
        return job.result(), None
    except Exception as e:  # noqa: BLE001 - the unit raised inside its job: that unit's failure
        lines = [line for line in str(e).strip().splitlines() if line.strip()]
        return None, f"SLURM job {job.job_id} failed: {lines[-1] if lines else type(e).__name__}"[:500]


def queue_states(job_ids: list[str]) -> dict[str, str]:
    """``squeue``'s state of each job still in the queue (array tasks one by one)."""
    if not job_ids:
        return {}
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(sorted(set(job_ids)))],
                         capture_output=True, text=True, timeout=60)
    states = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def ended_reason(job_id: str) -> str:
    """What ``scontrol`` still knows of an ended job: its state and reason, e.g. CANCELLED."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
    fields = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
    state, reason = fields.get("JobState"), fields.get("Reason")
    if state is None:
        return "the scheduler no longer knows it"
    return state if reason in (None, "None") else f"{state}, {reason}"


def progress_line(jobs: list[Any], names: list[str], states: dict[str, str],
                  results: dict[int, tuple[Any, str | None]]) -> str:
    """``jobs: 1 pending, 2 running, 3 done, 0 failed (ln 12_0 RUNNING, ...)``."""
    counts = {"pending": 0, "running": 0, "done": 0, "failed": 0}
    detail = []
    for i, job in enumerate(jobs):
        if i in results:
            counts["failed" if results[i][1] else "done"] += 1
            continue
        state = states.get(job.job_id, "ENDING")
        counts["pending" if state in ("PENDING", "REQUEUED", "CONFIGURING") else "running"] += 1
        detail.append(f"{names[i]} {job.job_id} {state}")
    head = ", ".join(f"{n} {k}" for k, n in counts.items())
    return f"jobs: {head}" + (f" ({', '.join(detail[:6])}{', ...' if len(detail) > 6 else ''})" if detail else "")


def executor_for(launch: Launch, out: Path) -> Executor:
    """The executor ``--launcher`` names (``launch``: the run's ``Launch`` section)."""
    if launch.launcher != "slurm":
        return Local(jobs=launch.jobs)
    return Slurm(launch, Path(out) / "slurm")

