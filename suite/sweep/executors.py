"""Where the sweep's units of work run: this machine, or a SLURM cluster (``--launcher``).

The runner hands an executor two kinds of unit and never asks which executor it is:

- ``train(calls)``: the training cells of a group, each a ``WorkerCall`` (a worker module run on
  its spec file by a ``suite.launch.Launcher``); the answer is, per cell, '' when its process
  ended normally, else why not (the cell's own outcome is its ``result.json``, read by the runner);
- ``measure(fn, *args)``: one function that measures a whole (task, seed) group (its memory probes
  and interleaved timing groups), so every ratio to the baseline is taken in one place.

``Local`` is today's behaviour: cells in threads of this process (``--jobs`` at once), each
started as its own worker process, and measurement right here. ``GpuPool`` is the same on a
machine with GPUs (``--device cuda``): every unit takes GPUs of its own from the pool while it
runs, a training cell as many as it has processes, a group's measurement one, and its worker
processes see only those (``CUDA_VISIBLE_DEVICES``); nothing else runs on a GPU while a group is
timed on it. Its ``concurrency`` lets the sweep work on several groups at once. ``Slurm`` submits through
submitit: the cells of a group as one job array, the measurement as one job (``--exclusive`` by
default, so nothing else shares the node while it is timed). It waits for each job by its result
file and by ``squeue``, not by ``sacct`` (a cluster without accounting answers nothing there),
shows progress as jobs change state, and turns a job that ended without a result (cancelled,
out of time, node failure) into that unit's failure with the scheduler's reason.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from suite import env, jsonio
from suite.env import GPUS_ENV, now_iso
from suite.errors import UsageError
from suite.launch import Launcher, ServerFirst
from suite.sweep.options import Launch

T = TypeVar("T")
#: what the SLURM executor submitted, one JSON line per job (in the run's ``slurm/`` folder)
JOBS_FILE = "jobs.jsonl"
#: seconds a job that ended well (or that the scheduler no longer knows) may be gone from the queue
#: before its missing result file counts as a failure (a shared filesystem can show a file a little
#: after the job that wrote it has ended)
RESULT_GRACE_S = 15.0
#: what ``scontrol`` calls a job that ended without running to its end: no result file is coming, so
#: its unit fails at once
STOPPED_STATES = frozenset({"CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                            "BOOT_FAIL", "DEADLINE"})
#: the final job of a detached run (in the run's ``slurm/`` folder): while it is queued the run is its own
DETACHED = "detached.json"


@dataclass(frozen=True)
class WorkerCall:
    """Run worker ``module`` on ``spec`` with ``launcher``: one unit of training."""
    name: str                  # what progress lines call it (the variant)
    module: str
    spec: str
    launcher: Launcher
    nodes: int = 1             # under SLURM: nodes of its DDP job (``launcher.nproc`` processes on each)

    def __call__(self) -> str:
        return self.launcher.run(self.module, Path(self.spec))


class Executor(Protocol):
    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        """Run every call; '' or why it failed, by call name (``done`` is told of each as it ends)."""
        ...

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args, env=...)`` as one unit (``env``: what the environment of the worker processes it
        starts adds, e.g. the GPU it was given); raises ``UnitFailed`` when the unit never returned."""
        ...

    @property
    def concurrency(self) -> int:
        """How many (task, seed) groups the sweep may have in this executor's hands at once."""
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
    concurrency: int = 1

    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        by_name = {c.name: c for c in calls}
        return each(self.jobs, lambda n: by_name[n](), list(by_name), done=done)

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args, env={})


class GpuPool:
    """This machine's GPUs ``gpus`` (indices as this process sees them), handed out to units."""

    def __init__(self, gpus: list[int], visible: str | None = None) -> None:
        """``visible``: this process's ``CUDA_VISIBLE_DEVICES`` (None: every GPU), which the indices
        are relative to; a worker is given the entries they name, so it sees the same physical GPU."""
        self.gpus = list(gpus)
        self.entries = [e.strip() for e in visible.split(",")] if visible else None
        self._free = list(gpus)
        self._turn = threading.Condition()

    @property
    def concurrency(self) -> int:
        return len(self.gpus)

    def env(self, gpus: list[int]) -> dict[str, str]:
        """A worker's environment on ``gpus``: it sees them alone; ``NORMBENCH_GPUS`` keeps their pool indices."""
        names = [self.entries[g] if self.entries else str(g) for g in gpus]
        return {"CUDA_VISIBLE_DEVICES": ",".join(names), GPUS_ENV: ",".join(map(str, gpus))}

    @contextmanager
    def taken(self, n: int) -> Iterator[list[int]]:
        """``n`` GPUs nobody else holds, for as long as the block runs (waits until that many are free)."""
        if n > len(self.gpus):
            raise UsageError(f"a unit needs {n} GPUs, but the pool has {len(self.gpus)} (--gpus)")
        with self._turn:
            self._turn.wait_for(lambda: len(self._free) >= n)
            mine, self._free = self._free[:n], self._free[n:]
        try:
            yield mine
        finally:
            with self._turn:
                self._free = sorted(self._free + mine)
                self._turn.notify_all()

    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        by_name = {c.name: c for c in calls}

        def run(name: str) -> str:
            call = by_name[name]
            with self.taken(call.launcher.nproc) as gpus:
                pinned = dataclasses.replace(call.launcher, env=tuple(sorted(self.env(gpus).items())))
                return dataclasses.replace(call, launcher=pinned)()

        return each(len(calls), run, list(by_name), done=done)

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        with self.taken(1) as gpus:
            return fn(*args, env=self.env(gpus))


# -- SLURM ------------------------------------------------------------------------------------
def slurm_parameters(launch: Launch, *, exclusive: bool, nodes: int = 1, tasks_per_node: int = 1,
                     after: list[str] | None = None) -> dict[str, object]:
    """The ``--slurm-*`` options as submitit's executor parameters (those given; ``--exclusive``
    only where asked). A DDP cell is ``nodes`` x ``tasks_per_node`` tasks, one per process; a job
    that must wait for others names them in ``after`` (it starts once they have ended, however)."""
    many = nodes > 1 or tasks_per_node > 1
    given: dict[str, object] = {
        "nodes": nodes if nodes > 1 else None, "tasks_per_node": tasks_per_node if many else None,
        # one failed rank ends its job's other ranks, instead of leaving them waiting in a collective
        "slurm_srun_args": ["--kill-on-bad-exit=1"] if many else None,
        "slurm_additional_parameters": {"dependency": "afterany:" + ":".join(after)} if after else None,
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
    """A call as each task of its job runs it: the worker in the task's own process (a job is already
    a fresh process of its own; a second interpreter would only import torch again). A DDP cell's
    processes are the job's tasks, so torchrun is never started inside one (never both nested)."""
    return dataclasses.replace(call, launcher=dataclasses.replace(call.launcher, mode="inline", nproc=1))


class RunCall:
    """What a training job runs: its call, in each of its tasks (submitit maps it over an array's calls).

    A task of a multi-process job joins the cell's process group through submitit's
    ``TorchDistributedEnvironment``: the address and port of the job's first node, and the task's
    rank, in the variables of torch's ``env://`` rendezvous (TCP, no shared file). Its
    ``checkpoint`` (called by submitit on the signal SLURM sends before a time limit or a
    preemption) resubmits the same call: the job is requeued and the cell continues from its last
    training checkpoint (``--checkpoint-every``)."""

    def __call__(self, call: WorkerCall) -> str:
        # SLURM stops a job it requeues or cancels with SIGTERM, then SIGKILL after its KillWait; submitit
        # ignores SIGTERM, so a cell would train on meanwhile and could finish a result its rerun then
        # trains again. End at once instead: the checkpoint keeps the training, the rerun continues it.
        signal.signal(signal.SIGTERM, _stopped)
        tasks = int(os.environ.get("SLURM_NTASKS", "1"))
        share_job_cpus()
        if tasks > 1:
            from submitit.helpers import TorchDistributedEnvironment
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        failure = in_job(call)()
        if failure and tasks > 1:   # exit non-zero: srun ends the other ranks at once
            raise RuntimeError(failure)
        return failure

    def checkpoint(self, call: WorkerCall) -> Any:
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(self, call)


def share_job_cpus() -> None:
    """Torch threads of a job's task: the CPUs SLURM gave the job on this node, shared by its tasks
    there (``--threads`` still wins: the cell sets it itself). A cluster without CPU binding leaves
    every core of the node visible, and two cells each starting a thread per core oversubscribe it
    (OpenMP's spinning threads then slow each to a fraction); this keeps a job within its share."""
    cpus = int(os.environ.get("SLURM_CPUS_ON_NODE", "0") or 0)
    if cpus <= 0:
        return
    per_node = int((os.environ.get("SLURM_NTASKS_PER_NODE") or "1").split("(")[0].split(",")[0] or 1)
    import torch
    torch.set_num_threads(max(1, cpus // max(1, per_node)))


def _stopped(signum: int, frame: object) -> None:
    print("normbench: the job was stopped by the scheduler (SIGTERM); the cell continues from its last "
          "checkpoint when it runs again", file=sys.stderr, flush=True)
    os._exit(128 + signum)   # no result file: the job is requeued, or its cell fails as cancelled


class Slurm:
    """Units as SLURM jobs through submitit; their files under ``folder`` (the run's ``slurm/``)."""

    #: groups in the queue at once: all of a sweep's (each waits in a thread of its own)
    concurrency = 64

    def __init__(self, launch: Launch, folder: Path, poll_s: float = 1.0) -> None:
        self.launch, self.folder, self.poll_s = launch, Path(folder), poll_s
        self._log = threading.Lock()

    def _executor(self, kind: str, exclusive: bool, **shape: Any) -> Any:
        import submitit
        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        ex.update_parameters(name=f"normbench-{kind}", **slurm_parameters(self.launch, exclusive=exclusive, **shape))
        return ex

    def submit_cells(self, calls: list[WorkerCall]) -> list[Any]:
        """Submit the cells of a group (one array; every cell of a group has one shape) and record them."""
        first = calls[0]
        ex = self._executor("cell", exclusive=False, nodes=first.nodes, tasks_per_node=first.launcher.nproc)
        jobs = ex.map_array(RunCall(), calls) if len(calls) > 1 else [ex.submit(RunCall(), first)]
        self._record("cell", [Path(c.spec).parent.name for c in calls], jobs)
        return jobs

    def submit_after(self, kind: str, unit: str, after: list[str], fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` as one job that starts once the jobs ``after`` have ended; record it."""
        job = self._executor(kind, exclusive=self.launch.slurm_exclusive, after=after).submit(ServerFirst(fn, *args))
        self._record(kind, [unit], [job])
        return job

    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        if not calls:
            return {}
        jobs = self.submit_cells(calls)
        out: dict[str, str] = {}

        def ended(i: int, value: Any, failure: str | None) -> None:
            out[calls[i].name] = failure if failure is not None else str(value)
            if done is not None:
                done(calls[i].name, out[calls[i].name])

        self._wait(jobs, [c.name for c in calls], ended)
        return {c.name: out[c.name] for c in calls}

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        job = self._executor("measure", exclusive=self.launch.slurm_exclusive).submit(ServerFirst(fn, *args, env={}))
        self._record("measure", [label], [job])
        (value, failure), = self._wait([job], [label])
        if failure is not None:
            raise UnitFailed(failure)
        return value

    def _record(self, kind: str, units: list[str], jobs: list[Any]) -> None:
        """Append what was submitted to ``jobs.jsonl`` (read by ``run_suite.py status``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._log, open(self.folder / JOBS_FILE, "a") as f:
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
                else:
                    since = gone_since.setdefault(i, time.monotonic())
                    state, reason = ended_state(job.job_id)
                    if state not in STOPPED_STATES and time.monotonic() - since <= RESULT_GRACE_S:
                        continue
                    results[i] = (None, no_result(job.job_id, (state, reason)))
                if ended is not None:
                    ended(i, *results[i])
            line = progress_line(jobs, names, states, results)
            if line != last:
                print(f"  {line}", file=sys.stderr, flush=True)
                last = line
            if len(results) < len(jobs):
                time.sleep(self.poll_s)
        return [results[i] for i in range(len(jobs))]


class Collected:
    """The final job of a detached sweep (``--detach``): each cell was trained by a job of its own,
    so a cell's outcome is what its job wrote, or why its job ended without writing it; the
    measurement runs here, in this job."""
    concurrency = 1

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)   # the run's ``slurm/``

    def train(self, calls: list[WorkerCall], done: Callable[[str, str], None] | None = None) -> dict[str, str]:
        jobs = newest_jobs(self.folder / JOBS_FILE)
        out = {}
        for call in calls:
            cell = Path(call.spec).parent
            job = jobs.get(cell.name)
            if (cell / "result.json").exists():
                out[call.name] = ""
            elif job is None:
                out[call.name] = "the cell was never submitted; --resume --out submits it"
            else:
                out[call.name] = no_result(job["job_id"])
            if done is not None:
                done(call.name, out[call.name])
        return out

    def measure(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args, env={})


def newest_jobs(path: Path) -> dict[str, dict[str, str]]:
    """The newest job of each unit the SLURM executor submitted (``jobs.jsonl``), by unit."""
    if not path.exists():
        return {}
    out: dict[str, dict[str, str]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            job = json.loads(line)
            out[str(job["unit"])] = {k: str(v) for k, v in job.items()}
    return out


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


def no_result(job_id: str, ended: tuple[str | None, str | None] | None = None) -> str:
    """Why a unit has no outcome: its job left the queue without writing one, as the scheduler tells it
    (``ended``: its ``ended_state``, where the caller has it)."""
    state, reason = ended or ended_state(job_id)
    if state is None:
        why = "the scheduler no longer knows it"
    else:
        why = state if reason in (None, "None") else f"{state}, {reason}"
    return f"SLURM job {job_id} ended without a result ({why})"


def ended_state(job_id: str) -> tuple[str | None, str | None]:
    """What ``scontrol`` still knows of an ended job: its state (e.g. CANCELLED) and reason; None, None
    once it has forgotten the job."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
    fields = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
    return fields.get("JobState"), fields.get("Reason")


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


def executor_for(launch: Launch, out: Path, device: str = "cpu") -> Executor:
    """The executor ``--launcher`` names (``launch``: the run's ``Launch`` section): on this machine
    with CUDA (and workers of their own), the GPU pool of ``--gpus`` (checked: every one exists)."""
    if launch.launcher == "slurm":
        return Slurm(launch, Path(out) / "slurm")
    if device == "cuda" and not launch.inline:
        return GpuPool(launch.gpus if launch.gpus is not None else list(range(env.visible_gpus())),
                       os.environ.get("CUDA_VISIBLE_DEVICES"))
    return Local(jobs=launch.jobs)


