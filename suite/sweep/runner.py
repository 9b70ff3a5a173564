"""The sweep: tasks x seeds x variants, each cell in its own worker, rows appended.

For each (task, seed) group: run the pending cells (train/eval/deploy; ``--jobs N`` runs N at
once, each with its share of the CPU threads), measure each
deployed model's memory alone, then time the group's deployed models interleaved in one
worker, and append one row per cell. A cell that fails is a row with its status and
message; the sweep goes on. Workers are started by ``suite.launch``.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import faults, jsonio
from suite.env import GPUS_ENV, job_info, now_iso
from suite.errors import DataError, UsageError
from suite.launch import Launcher, worker_launcher
from suite.measure.env import provenance
from suite.measure.jobs import MemoryJob, TimingResult, run_memory, run_timing, timing_job
from suite.measure.runtimes import RUNTIMES, precision_unsupported
from suite.measure.timing_worker import timing_line
from suite.models import artifact
from suite.parts import LauncherName, Memory, Provenance, RowDoc
from suite.report.leaderboard import write_reports
from suite.report.store import Store
from suite.sweep.config import PROBE_FILE, RANK_ERROR, CellSpec, RunConfig
from suite.sweep.executors import (
    DETACHED,
    Collected,
    Executor,
    Slurm,
    UnitFailed,
    WorkerCall,
    each,
    executor_for,
    queue_states,
)
from suite.sweep.identity import CellPlan, cell_id, cell_plan, cell_profile, config_id
from suite.sweep.outcome import CellResult
from suite.sweep.record import RunContext, make_row
from suite.sweep.shard import shard_groups
from suite.task import TASKS

#: a trained cell's result.json without the input spec of its model (none written by this suite)
NO_INPUT_SPEC = "the cell's result.json says no input spec for its deployed model: re-run the cell"


def run_sweep(cfg: RunConfig, executor: Executor | None = None) -> int:
    """Run every pending cell; returns the exit status (0 ok, 1 some cell errored, 2 bad data).
    ``executor``: where the work runs (default: what ``--launcher`` names)."""
    store = Store(cfg.out)
    with store.lock():
        if (cfg.out / "run.json").exists() and not cfg.output.resume:
            raise UsageError(f"{cfg.out} already holds a run; pass --resume to complete it, or another --out")
        check_not_detached(cfg.out)
        bad = _check_data(cfg)
        if len(bad) == len(cfg.grid.tasks):
            raise DataError("; ".join(bad.values()))
        for task, message in bad.items():  # the other tasks still run; these get error rows
            print(f"normbench: error: task {task}: {message}", file=sys.stderr)
        if cfg.output.resume and (cfg.out / "run.json").exists():  # the run's own record is never rewritten
            run_id = jsonio.read(cfg.out / "run.json")["run_id"]
            print(f"normbench: resuming run {run_id} in {cfg.out}", file=sys.stderr)
        else:
            run_id = uuid.uuid4().hex[:12]
            jsonio.write_atomic(cfg.out / "run.json", {"run_id": run_id, "started_at": now_iso(),
                                                      "argv": sys.argv, "config": cfg.as_json()})
        ctx = RunContext(run_id, _launcher(cfg).mode, _provenance(cfg))
        done, errors = store.done(), 0
        executor = executor or executor_for(cfg.launch, cfg.out, cfg.grid.device)
        mine = set(shard_groups(cfg.grid.tasks, cfg.grid.seeds, cfg.grid.shard))
        groups = [(t, s) for t in cfg.grid.tasks for s in cfg.grid.seeds if (t, s) in mine]
        if cfg.launch.detach and isinstance(executor, Slurm):
            return _detach(cfg, groups, done, bad, executor)
        for row in _group_rows(groups, executor.concurrency,
                               lambda t, s: _group(cfg, ctx, t, s, done, bad.get(t), executor)):
            store.append(row)
            errors += row["status"] == "error"
            faults.point("between-rows")
        faults.point("report")
        print(write_reports(store.rows(), cfg.out))
        print(f"\nresults: {cfg.out}/ (rows.jsonl, table.csv, leaderboard.md)", file=sys.stderr)
    return 2 if bad else (1 if errors else 0)


def _pending(cfg: RunConfig, task: str, seed: int, done: dict[str, str | None]
             ) -> tuple[dict[str, CellSpec], dict[str, CellPlan], set[tuple[str, str, str]]]:
    """A group's cell specs and plans, and its (variant, runtime, precision) rows not yet recorded as asked."""
    specs = {v: cfg.cell(task, v, seed) for v in cfg.grid.variants}
    plans = {v: cell_plan(specs[v]) for v in cfg.grid.variants}
    pending = {(v, r, p) for v in cfg.grid.variants for r, p in cfg.measurements  # recorded as asked: done
               if done.get(specs[v].key(r, p), "") != config_id(plans[v], r, p)}
    return specs, plans, pending


def _group(cfg: RunConfig, ctx: RunContext, task: str, seed: int, done: dict[str, str | None], bad: str | None,
           executor: Executor) -> Iterator[RowDoc]:
    """The rows of one (task, seed) group still missing: its cells trained and measured (``bad``: why
    the task's data cannot be read, every missing row an error saying so)."""
    specs, plans, pending = _pending(cfg, task, seed, done)
    if bad is not None:
        for v, r, p in sorted(pending):
            yield make_row(ctx, specs[v], CellResult(status="error", message=bad), runtime=r, precision=p,
                           plan=plans[v])
        return
    yield from _run_group(cfg, ctx, specs, plans, pending, executor)


def _group_rows(groups: list[tuple[str, int]], at_once: int,
                rows_of: Callable[[str, int], Iterable[RowDoc]]) -> Iterator[RowDoc]:
    """Every group's rows: one group after another as they come, or (``at_once`` > 1: GPUs or a
    cluster to share) up to ``at_once`` groups worked on together, each group's rows as it ends.
    Only the caller writes them (one writer)."""
    if at_once <= 1 or len(groups) <= 1:
        for task, seed in groups:
            yield from rows_of(task, seed)
        return
    failed: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(at_once, len(groups))) as pool:
        futures = [pool.submit(lambda g: list(rows_of(*g)), g) for g in groups]
        for future in as_completed(futures):
            try:
                rows = future.result()
            except Exception as e:  # noqa: BLE001 - the other groups' rows land first, then it is raised
                failed = failed or e
                continue
            yield from rows
    if failed is not None:
        raise failed


def _detach(cfg: RunConfig, groups: list[tuple[str, int]], done: dict[str, str | None], bad: dict[str, str],
            executor: Slurm) -> int:
    """``--detach``: submit every cell still to train (one array per group), then one final job that
    starts when they have all ended and completes the run as a resumed sweep would, measuring each
    group and writing the rows and reports (its cells are never trained again there)."""
    after: list[str] = []
    cells = 0
    for task, seed in groups:
        if task in bad:   # its rows are errors, written by the final job
            continue
        specs, plans, pending = _pending(cfg, task, seed, done)
        calls = [_call(cfg, specs[v]) for v in sorted({v for v, _, _ in pending}, key=cfg.grid.variants.index)
                 if _prepare_cell(specs[v], cell_id(plans[v])) is None]
        if calls:
            jobs = executor.submit_cells(calls)
            cells += len(jobs)
            after += sorted({str(j.job_id).split("_")[0] for j in jobs})
    job = executor.submit_after("assemble", "assemble", after, assemble_run, str(cfg.out))
    jsonio.write_atomic(cfg.out / "slurm" / DETACHED, {"job_id": job.job_id, "submitted_at": now_iso()})
    print(f"normbench: submitted {cells} training job(s) and the job {job.job_id} that measures the groups and "
          f"writes the rows when they end; follow it with: run_suite.py status {cfg.out}", file=sys.stderr)
    return 0


def assemble_run(out: str) -> int:
    """The final job of a detached sweep: the run completed from its folder, its cells' own jobs' results read."""
    stored = RunConfig.from_json(jsonio.read(Path(out) / "run.json")["config"])
    cfg = stored.replace(output=dataclasses.replace(stored.output, out=Path(out), resume=True),
                         launch=dataclasses.replace(stored.launch, detach=False))
    return run_sweep(cfg, executor=Collected(Path(out) / "slurm"))


def check_not_detached(out: Path) -> None:
    """A detached run is completed by its own final job: no other sweep may work on it while that job is queued."""
    path = out / "slurm" / DETACHED
    if not path.exists():
        return
    job = str(jsonio.read(path)["job_id"])
    own = job_info()
    if own is not None and own["job_id"] == job:
        return
    if job in queue_states([job]):
        raise UsageError(f"{out} is a detached run whose final job {job} is still queued; wait for it "
                         f"(run_suite.py status {out}) or scancel {job} first")


def _call(cfg: RunConfig, spec: CellSpec) -> WorkerCall:
    return WorkerCall(spec.variant, "suite.sweep.cell", str(Path(spec.cell_dir) / "spec.json"), _launcher(cfg),
                      nodes=cfg.training.nodes)


def _check_data(cfg: RunConfig) -> dict[str, str]:
    bad = {}
    for task in cfg.grid.tasks:
        try:
            TASKS.get(task)().check_data(cfg.grid.data_root)
        except DataError as e:
            bad[task] = str(e)
    return bad


def _launcher(cfg: RunConfig) -> Launcher:
    nproc = cfg.training.nproc_per_node
    mode: LauncherName = "inline" if cfg.launch.inline else ("torchrun" if nproc > 1 else "subprocess")
    return Launcher(mode=mode, nproc=nproc, timeout_s=cfg.launch.cell_timeout)


def _run_group(cfg: RunConfig, ctx: RunContext, specs: dict[str, CellSpec], plans: dict[str, CellPlan],
               pending: set[tuple[str, str, str]], executor: Executor) -> Iterator[RowDoc]:
    """Train the group's cells once, then measure them under every (runtime, precision): one
    interleaved timing worker per pair, so every ratio is paired inside one runtime. Both steps
    go to ``executor`` (this machine, or jobs of a cluster); the rows are made here."""
    if not pending:
        return
    results = _train_cells(cfg, executor, specs, plans,
                           [v for v in cfg.grid.variants if any(v == pv for pv, _, _ in pending)])
    base = cfg.baseline
    if base not in results:  # recorded earlier: reuse its deployed model for paired ratios
        prior = Path(specs[base].cell_dir) / "result.json"
        earlier = CellResult.from_json(jsonio.read(prior)) if prior.exists() else None
        if earlier is not None and artifact.exists(Path(specs[base].cell_dir)) and \
                earlier.cell_id == cell_id(plans[base]):
            results[base] = earlier
    some = next(iter(specs.values()))
    if not any(r.ok for r in results.values()):   # nothing to time or probe: no job (on a cluster, a node) for it
        measured = measure_group(cfg, specs, results, pending)
    else:
        try:
            measured = executor.measure(f"{some.task}/seed {some.seed} measurement", measure_group, cfg, specs,
                                        results, pending)
        except UnitFailed as e:  # the group's measurement job never returned: every measured row says why
            measured = {pair: Measured(None, TimingResult(error=str(e)), {}) for pair in cfg.measurements}
    for runtime, precision in cfg.measurements:
        todo = [v for v in cfg.grid.variants if (v, runtime, precision) in pending]
        m = measured.get((runtime, precision))
        if m is None:
            continue
        for v in todo:
            r, memory = results[v], m.memory.get(v)
            failure = _failure(v, m.timing, r, precision) if r.ok and not m.reason else None
            if r.ok and m.reason:
                r = r.with_status("not-applicable", m.reason)
            elif failure is not None:  # only trained cells were checked
                r = r.with_status("error", failure)
            elif r.ok and memory is not None and "error" in memory:
                r = r.with_status("error", f"memory probe failed: {memory['error']}")
            here = ctx if m.provenance is None else dataclasses.replace(ctx, provenance=m.provenance)
            yield make_row(here, specs[v], r, m.timing, memory=memory, runtime=runtime, precision=precision,
                           plan=plans[v])


@dataclass(frozen=True)
class Measured:
    """One (runtime, precision) of a group: why it does not apply here, its timing, each model's memory."""
    reason: str | None
    timing: TimingResult | None
    memory: dict[str, Memory]
    provenance: Provenance | None = None   # of the node it ran on, where that is not the sweep's (a job)


def measure_group(cfg: RunConfig, specs: dict[str, CellSpec], results: dict[str, CellResult],
                  pending: set[tuple[str, str, str]], env: dict[str, str] | None = None
                  ) -> dict[tuple[str, str], Measured]:
    """Every (runtime, precision) the group asks for: each trained cell's memory alone, then the
    interleaved timing of them all. One unit of work (a cluster runs it as one job on one node);
    ``env``: what its workers' environment adds (the GPU of the pool it was given)."""
    ok = {v: r for v, r in results.items() if r.ok}
    base = cfg.baseline if cfg.baseline in ok else None
    env = env or {}
    pinned = env.get(GPUS_ENV)
    device = _torch_device(cfg.grid.device if pinned is None else f"cuda:{pinned.split(',')[0]}")
    workers = worker_launcher(_launcher(cfg), env)
    job = job_info()
    node = None if job is None and pinned is None else provenance(device)   # the node's or GPU's, not the sweep's
    out: dict[tuple[str, str], Measured] = {}
    for runtime, precision in cfg.measurements:
        todo = [v for v in cfg.grid.variants if (v, runtime, precision) in pending]
        if not todo:
            continue
        reason = RUNTIMES.get(runtime).unsupported(device, precision) or precision_unsupported(device, precision)
        timing = None if reason or not ok else _timing(cfg, specs, ok, base, runtime, precision, workers)
        if timing is not None and job is not None:
            timing = dataclasses.replace(timing, job=job)
        probe = [v for v in todo if results[v].ok and not reason and _failure(v, timing, results[v], precision) is None]
        memory = each(cfg.launch.jobs, functools.partial(_memory_of, cfg, specs, results, runtime, precision, workers),
                      probe)
        out[(runtime, precision)] = Measured(reason, timing, memory, node)
    return out


def _failure(variant: str, timing: TimingResult | None, r: CellResult, precision: str) -> str | None:
    """Why a trained cell's (runtime, precision) measurement failed, or None when its memory is next."""
    if timing is not None and timing.error is not None:
        return f"timing failed: {timing.error}"
    if timing is not None and variant in timing.failed:
        return timing.failed[variant]
    error = r.evaluation_error(precision)
    return None if error is None else f"{precision} evaluation failed: {error}"


def _train_cells(cfg: RunConfig, executor: Executor, specs: dict[str, CellSpec], plans: dict[str, CellPlan],
                 variants: list[str]) -> dict[str, CellResult]:
    """Each variant's cell result: a cell already trained for this plan is reused, the others are
    trained by ``executor`` (here: one after another, or ``--jobs`` at once, each cell its own
    process with its share of the threads; on a cluster: one job each)."""
    if cfg.launch.jobs > 1 and len(variants) > 1:   # local only (checked: --jobs is refused with slurm)
        print(f"normbench: training {len(variants)} cells, {cfg.launch.jobs} at once with {cfg.cell_threads} thread(s) "
              f"each (progress bars off)", file=sys.stderr)
    results: dict[str, CellResult] = {}
    calls = []
    for v in variants:
        prior = _prepare_cell(specs[v], cell_id(plans[v]), fresh=not isinstance(executor, Collected))
        if prior is not None:
            results[v] = prior
            _log(specs[v], prior)
        else:
            calls.append(_call(cfg, specs[v]))

    def finished(v: str, err: str) -> None:
        results[v] = _read_cell(specs[v], err)
        _log(specs[v], results[v])

    executor.train(calls, done=finished)
    return {v: results[v] for v in variants}


def _prepare_cell(spec: CellSpec, expected_id: str, fresh: bool = True) -> CellResult | None:
    """The cell's earlier result where it can be reused, else None after readying its folder and spec
    (``fresh=False``: leave the folder as it is, for a job that only reads what the cell's job wrote)."""
    d = Path(spec.cell_dir)
    res_path = d / "result.json"
    # a cell that finished in a run killed before its rows landed is reused: a resumed run cannot change
    # what its cells mean, and the cell_id says the cell is this one (wherever the folder is now)
    if res_path.exists():
        prior = CellResult.from_json(jsonio.read(res_path))
        if prior.ok and prior.cell_id == expected_id and artifact.exists(d):
            return prior
    if not fresh:
        return None
    d.mkdir(parents=True, exist_ok=True)
    res_path.unlink(missing_ok=True)
    for stale in d.glob(RANK_ERROR.format(rank="*")):
        stale.unlink()
    jsonio.write_atomic(d / "spec.json", spec.as_json())
    return None


def _read_cell(spec: CellSpec, err: str) -> CellResult:
    """What the cell's process wrote (or, where it wrote nothing, why it ended: ``err``)."""
    d = Path(spec.cell_dir)
    res_path = d / "result.json"
    result = CellResult.from_json(jsonio.read(res_path)) if res_path.exists() else \
        CellResult(status="error", message=err or "cell process ended without writing its result")
    ranks = sorted(d.glob(RANK_ERROR.format(rank="*")))
    if ranks and not result.ok:  # a rank other than 0 failed first; what rank 0 saw follows from it
        rank = ranks[0].name.split("-")[1]
        result = result.with_status(result.status, f"rank {rank} failed: {ranks[0].read_text().strip()} "
                                                   f"(rank 0: {result.message})")
    return result


def _memory_of(cfg: RunConfig, specs: dict[str, CellSpec], results: dict[str, CellResult], runtime: str,
               precision: str, launcher: Launcher, variant: str) -> Memory:
    return _memory(cfg, specs[variant], results[variant], runtime, precision, launcher)


def _memory(cfg: RunConfig, spec: CellSpec, result: CellResult, runtime: str, precision: str,
            launcher: Launcher) -> Memory:
    d = Path(spec.cell_dir)
    if result.input_spec is None:
        return {"error": NO_INPUT_SPEC}
    job = MemoryJob(model=str(d), input_spec=result.input_spec, batch=cell_profile(spec).throughput_batch,
                    device=cfg.grid.device, threads=cfg.launch.threads, runtime=runtime, precision=precision,
                    out=str(d / f"memory-{runtime}-{precision}.json"))
    memory = run_memory(job, launcher)
    if launcher.mode == "inline" and "source" in memory:  # the probe shared the sweep's process
        memory["source"] += " (inline launcher: measured inside the sweep's own process, not comparable)"
    return memory


def _timing(cfg: RunConfig, specs: dict[str, CellSpec], ok: dict[str, CellResult], baseline: str | None,
            runtime: str, precision: str, launcher: Launcher) -> TimingResult:
    first = next(iter(ok.values()))
    some = next(iter(specs.values()))
    group_dir = Path(some.cell_dir).parent
    profile = cell_profile(some)  # the measurement's budgets are the task profile's, unless an option says
    if first.input_spec is None:
        return TimingResult(error=NO_INPUT_SPEC)
    job = timing_job({v: specs[v].cell_dir for v in ok},
                     per_model_s=cfg.measurement.timing_seconds or profile.timing_s_per_model,
                     throughput_batch=profile.throughput_batch, baseline=baseline, device=cfg.grid.device,
                     threads=cfg.launch.threads, runtime=runtime, precision=precision,
                     input_spec=first.input_spec, unit=TASKS.get(some.task).throughput_unit,
                     probe=Path(specs[baseline or next(iter(ok))].cell_dir) / PROBE_FILE,
                     out=group_dir / f"timing-{some.task}-s{some.seed}-{runtime}-{precision}.json")
    t0 = time.perf_counter()
    timing = run_timing(job, launcher)
    print(f"  {timing_line(f'{some.task}/seed {some.seed} {runtime} {precision}', timing)} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return timing


def _log(spec: CellSpec, r: CellResult) -> None:
    q, pm = r.quality or {}, r.primary_metric
    detail = f"{pm} {q[pm]:.2f}" if pm in q else r.message
    print(f"  {spec.task}/{spec.variant}/seed {spec.seed}: {r.status} {detail} ({r.cell_seconds:.0f} s)",
          file=sys.stderr)


def _provenance(cfg: RunConfig) -> Provenance:
    """This process's provenance: that of every row measured here. Under a scheduler a row takes
    its measurement job's; this one (the login node's software, the device left undescribed) is
    only for rows whose group was never measured."""
    if cfg.launch.launcher == "local":
        return provenance(_torch_device(cfg.grid.device))
    here = provenance(_torch_device("cpu"))
    here["device"] = {"type": "cuda" if cfg.grid.device == "cuda" else "cpu",
                      "name": "not described: no measurement job reported its node"}
    return here


def _torch_device(name: str) -> Any:
    import torch
    return torch.device(name)
