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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import faults, jsonio
from suite.env import job_info, now_iso
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
from suite.sweep.executors import Executor, UnitFailed, WorkerCall, each, executor_for
from suite.sweep.identity import CellPlan, cell_id, cell_plan, cell_profile, config_id
from suite.sweep.outcome import CellResult
from suite.sweep.record import RunContext, make_row
from suite.sweep.shard import shard_groups
from suite.task import TASKS

#: a trained cell's result.json without the input spec of its model (none written by this suite)
NO_INPUT_SPEC = "the cell's result.json says no input spec for its deployed model: re-run the cell"


def run_sweep(cfg: RunConfig) -> int:
    """Run every pending cell; returns the exit status (0 ok, 1 some cell errored, 2 bad data)."""
    store = Store(cfg.out)
    with store.lock():
        if (cfg.out / "run.json").exists() and not cfg.output.resume:
            raise UsageError(f"{cfg.out} already holds a run; pass --resume to complete it, or another --out")
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
        executor = executor_for(cfg.launch, cfg.out)
        mine = set(shard_groups(cfg.grid.tasks, cfg.grid.seeds, cfg.grid.shard))
        for task in cfg.grid.tasks:
            for seed in cfg.grid.seeds:
                if (task, seed) not in mine:
                    continue
                specs = {v: cfg.cell(task, v, seed) for v in cfg.grid.variants}
                plans = {v: cell_plan(specs[v]) for v in cfg.grid.variants}
                pending = {(v, r, p) for v in cfg.grid.variants for r, p in cfg.measurements  # recorded as asked: done
                           if done.get(specs[v].key(r, p), "") != config_id(plans[v], r, p)}
                if task in bad:
                    rows: Iterable[RowDoc] = (make_row(ctx, specs[v], CellResult(status="error", message=bad[task]),
                                                     runtime=r, precision=p, plan=plans[v])
                                            for v, r, p in sorted(pending))
                else:
                    rows = _run_group(cfg, ctx, specs, plans, pending, executor)
                for row in rows:
                    store.append(row)
                    errors += row["status"] == "error"
                    faults.point("between-rows")
        faults.point("report")
        print(write_reports(store.rows(), cfg.out))
        print(f"\nresults: {cfg.out}/ (rows.jsonl, table.csv, leaderboard.md)", file=sys.stderr)
    return 2 if bad else (1 if errors else 0)


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
    try:
        measured = executor.measure(f"{some.task}/seed {some.seed} measurement", measure_group, cfg, specs, results,
                                    pending)
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
                  pending: set[tuple[str, str, str]]) -> dict[tuple[str, str], Measured]:
    """Every (runtime, precision) the group asks for: each trained cell's memory alone, then the
    interleaved timing of them all. One unit of work (a cluster runs it as one job on one node)."""
    ok = {v: r for v, r in results.items() if r.ok}
    base = cfg.baseline if cfg.baseline in ok else None
    device = _torch_device(cfg.grid.device)
    job = job_info()
    node = None if job is None else provenance(device)   # in a job: the node's, not the sweep's
    out: dict[tuple[str, str], Measured] = {}
    for runtime, precision in cfg.measurements:
        todo = [v for v in cfg.grid.variants if (v, runtime, precision) in pending]
        if not todo:
            continue
        reason = RUNTIMES.get(runtime).unsupported(device, precision) or precision_unsupported(device, precision)
        timing = None if reason or not ok else _timing(cfg, specs, ok, base, runtime, precision)
        if timing is not None and job is not None:
            timing = dataclasses.replace(timing, job=job)
        probe = [v for v in todo if results[v].ok and not reason and _failure(v, timing, results[v], precision) is None]
        memory = each(cfg.launch.jobs, functools.partial(_memory_of, cfg, specs, results, runtime, precision), probe)
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
        prior = _prepare_cell(specs[v], cell_id(plans[v]))
        if prior is not None:
            results[v] = prior
            _log(specs[v], prior)
        else:
            calls.append(WorkerCall(v, "suite.sweep.cell", str(Path(specs[v].cell_dir) / "spec.json"), _launcher(cfg)))

    def finished(v: str, err: str) -> None:
        results[v] = _read_cell(specs[v], err)
        _log(specs[v], results[v])

    executor.train(calls, done=finished)
    return {v: results[v] for v in variants}


def _prepare_cell(spec: CellSpec, expected_id: str) -> CellResult | None:
    """The cell's earlier result where it can be reused, else None after readying its folder and spec."""
    d = Path(spec.cell_dir)
    res_path = d / "result.json"
    # a cell that finished in a run killed before its rows landed is reused: a resumed run cannot change
    # what its cells mean, and the cell_id says the cell is this one (wherever the folder is now)
    if res_path.exists():
        prior = CellResult.from_json(jsonio.read(res_path))
        if prior.ok and prior.cell_id == expected_id and artifact.exists(d):
            return prior
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
               precision: str, variant: str) -> Memory:
    return _memory(cfg, specs[variant], results[variant], runtime, precision)


def _memory(cfg: RunConfig, spec: CellSpec, result: CellResult, runtime: str, precision: str) -> Memory:
    d = Path(spec.cell_dir)
    if result.input_spec is None:
        return {"error": NO_INPUT_SPEC}
    job = MemoryJob(model=str(d), input_spec=result.input_spec, batch=cell_profile(spec).throughput_batch,
                    device=cfg.grid.device, threads=cfg.launch.threads, runtime=runtime, precision=precision,
                    out=str(d / f"memory-{runtime}-{precision}.json"))
    launcher = worker_launcher(_launcher(cfg))
    memory = run_memory(job, launcher)
    if launcher.mode == "inline" and "source" in memory:  # the probe shared the sweep's process
        memory["source"] += " (inline launcher: measured inside the sweep's own process, not comparable)"
    return memory


def _timing(cfg: RunConfig, specs: dict[str, CellSpec], ok: dict[str, CellResult], baseline: str | None,
            runtime: str, precision: str) -> TimingResult:
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
    timing = run_timing(job, worker_launcher(_launcher(cfg)))
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
