"""The sweep: tasks x seeds x variants, each cell in its own worker, rows appended.

For each (task, seed) group: run the pending cells (train/eval/deploy; ``--jobs N`` runs N at
once, each with its share of the CPU threads), measure each
deployed model's memory alone, then time the group's deployed models interleaved in one
worker, and append one row per cell. A cell that fails is a row with its status and
message; the sweep goes on. Workers are started by ``suite.launch``.
"""
from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from suite import faults, jsonio
from suite.env import now_iso
from suite.errors import DataError, UsageError
from suite.launch import Launcher, worker_launcher
from suite.measure.env import provenance
from suite.measure.interleave import block_for
from suite.measure.runtimes import RUNTIMES, precision_unsupported
from suite.measure.timing_worker import timing_line
from suite.models import artifact
from suite.report.leaderboard import write_reports
from suite.report.rows import SCHEMA_VERSION
from suite.report.store import Store
from suite.sweep.config import PROBE_FILE, RANK_ERROR, CellSpec, RunConfig
from suite.sweep.identity import cell_id, cell_plan, config_id
from suite.sweep.record import make_row
from suite.sweep.shard import shard_groups
from suite.task import TASKS


def run_sweep(cfg: RunConfig) -> int:
    """Run every pending cell; returns the exit status (0 ok, 1 some cell errored, 2 bad data)."""
    store = Store(cfg.out)
    with store.lock():
        if (cfg.out / "run.json").exists() and not cfg.resume:
            raise UsageError(f"{cfg.out} already holds a run; pass --resume to complete it, or another --out")
        bad = _check_data(cfg)
        if len(bad) == len(cfg.tasks):
            raise DataError("; ".join(bad.values()))
        for task, message in bad.items():  # the other tasks still run; these get error rows
            print(f"normbench: error: task {task}: {message}", file=sys.stderr)
        if cfg.resume and (cfg.out / "run.json").exists():  # the run's own record is never rewritten
            run_id = jsonio.read(cfg.out / "run.json")["run_id"]
            print(f"normbench: resuming run {run_id} in {cfg.out}", file=sys.stderr)
        else:
            run_id = uuid.uuid4().hex[:12]
            jsonio.write_atomic(cfg.out / "run.json", {"run_id": run_id, "started_at": now_iso(),
                                                      "argv": sys.argv, "config": cfg.as_json()})
        ctx = {"run_id": run_id, "launcher": _launcher(cfg).mode,
               "provenance": {"schema_version": SCHEMA_VERSION, **provenance(_torch_device(cfg.device))}}
        done, errors = store.done(), 0
        mine = set(shard_groups(cfg.tasks, cfg.seeds, cfg.shard))
        for task in cfg.tasks:
            for seed in cfg.seeds:
                if (task, seed) not in mine:
                    continue
                specs = {v: cfg.cell(task, v, seed) for v in cfg.variants}
                plans = {v: cell_plan(specs[v]) for v in cfg.variants}
                pending = {(v, r, p) for v in cfg.variants for r, p in cfg.measurements  # recorded as asked: done
                           if done.get(specs[v].key(r, p), "") != config_id(plans[v], r, p)}
                if task in bad:
                    rows: Iterable[dict] = (make_row(ctx, specs[v], {"status": "error", "message": bad[task]},
                                                     runtime=r, precision=p, plan=plans[v])
                                            for v, r, p in sorted(pending))
                else:
                    rows = _run_group(cfg, ctx, specs, plans, pending)
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
    for task in cfg.tasks:
        try:
            TASKS.get(task)().check_data(cfg.data_root)
        except DataError as e:
            bad[task] = str(e)
    return bad


def _launcher(cfg: RunConfig) -> Launcher:
    mode = "inline" if cfg.launch == "inline" else ("torchrun" if cfg.nproc_per_node > 1 else "subprocess")
    return Launcher(mode=mode, nproc=cfg.nproc_per_node, timeout_s=cfg.cell_timeout_s)


def _run_group(cfg: RunConfig, ctx: dict[str, Any], specs: dict[str, CellSpec], plans: dict[str, dict[str, Any]],
               pending: set[tuple[str, str, str]]) -> Iterator[dict]:
    """Train the group's cells once, then measure them under every (runtime, precision): one
    interleaved timing worker per pair, so every ratio is paired inside one runtime."""
    if not pending:
        return
    results = _train_cells(cfg, specs, plans, [v for v in cfg.variants if any(v == pv for pv, _, _ in pending)])
    base = cfg.baseline
    if base not in results:  # recorded earlier: reuse its deployed model for paired ratios
        prior = Path(specs[base].cell_dir) / "result.json"
        if prior.exists() and artifact.exists(Path(specs[base].cell_dir)) and \
                jsonio.read(prior).get("cell_id") == cell_id(plans[base]):
            results[base] = jsonio.read(prior)
    ok = {v: r for v, r in results.items() if r["status"] == "ok"}
    device = _torch_device(cfg.device)
    for runtime, precision in cfg.measurements:
        todo = [v for v in cfg.variants if (v, runtime, precision) in pending]
        if not todo:
            continue
        reason = RUNTIMES.get(runtime).unsupported(device, precision) or precision_unsupported(device, precision)
        timing = {} if reason or not ok else _timing(cfg, specs, ok, base if base in ok else None, runtime, precision)
        checked = {v: _failure(v, timing, results[v], precision)
                   for v in todo if results[v]["status"] == "ok" and not reason}
        probed = _each(cfg.jobs, lambda v, rt=runtime, pr=precision: _memory(cfg, specs[v], results[v], rt, pr),
                       [v for v, failure in checked.items() if failure is None])
        for v in todo:
            r = dict(results[v])
            if r["status"] == "ok":
                r |= {"status": "not-applicable", "message": reason} if reason else \
                    checked[v] or _with_memory(probed[v])
            yield make_row(ctx, specs[v], r, timing, runtime=runtime, precision=precision, plan=plans[v])


def _failure(variant: str, timing: dict[str, Any], r: dict[str, Any], precision: str) -> dict[str, Any] | None:
    """Why a trained cell's (runtime, precision) measurement failed, or None when its memory is next."""
    if "error" in timing:
        return {"status": "error", "message": f"timing failed: {timing['error']}"}
    if variant in (timing.get("failed") or {}):
        return {"status": "error", "message": timing["failed"][variant]}
    low = (r.get("precision_quality") or {}).get(precision, {}) if precision != "fp32" else {}
    if "error" in low:
        return {"status": "error", "message": f"{precision} evaluation failed: {low['error']}"}
    return None


def _with_memory(memory: dict[str, Any]) -> dict[str, Any]:
    if "error" in memory:
        return {"status": "error", "message": f"memory probe failed: {memory['error']}", "memory": memory}
    return {"memory": memory}


def _each(jobs: int, fn: Callable[[str], dict[str, Any]], names: list[str],
          done: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """``fn`` of every name, ``jobs`` at once (each call starts and waits for one worker process);
    ``done`` is told of each result as it comes. The results keep the order of ``names``."""
    out: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(names)))) as pool:
        running = {pool.submit(fn, n): n for n in names}
        for future in as_completed(running):
            out[running[future]] = future.result()
            if done is not None:
                done(running[future], out[running[future]])
    return {n: out[n] for n in names}


def _train_cells(cfg: RunConfig, specs: dict[str, CellSpec], plans: dict[str, dict[str, Any]],
                 variants: list[str]) -> dict[str, dict[str, Any]]:
    """Each variant's cell result: trained one after another, or ``cfg.jobs`` at once (each cell is
    its own process; its threads were divided when its spec was made)."""
    if cfg.jobs > 1 and len(variants) > 1:
        print(f"normbench: training {len(variants)} cells, {cfg.jobs} at once with {cfg.cell_threads} thread(s) "
              f"each (progress bars off)", file=sys.stderr)
    return _each(cfg.jobs, lambda v: _cell_result(cfg, specs[v], cell_id(plans[v])), variants,
                 done=lambda v, r: _log(specs[v], r))


def _cell_result(cfg: RunConfig, spec: CellSpec, expected_id: str) -> dict[str, Any]:
    d = Path(spec.cell_dir)
    res_path, spec_path = d / "result.json", d / "spec.json"
    if res_path.exists() and spec_path.exists() and _same_cell(jsonio.read(spec_path), spec.as_json()):
        prior = jsonio.read(res_path)  # a finished cell from a run killed before its rows landed
        if prior.get("status") == "ok" and prior.get("cell_id") == expected_id and artifact.exists(d):
            return prior
    d.mkdir(parents=True, exist_ok=True)
    res_path.unlink(missing_ok=True)
    for stale in d.glob(RANK_ERROR.format(rank="*")):
        stale.unlink()
    jsonio.write_atomic(spec_path, spec.as_json())
    err = _launcher(cfg).run("suite.sweep.cell", spec_path)
    result = jsonio.read(res_path) if res_path.exists() else \
        {"status": "error", "message": err or "cell process ended without writing its result"}
    ranks = sorted(d.glob(RANK_ERROR.format(rank="*")))
    if ranks and result["status"] != "ok":  # a rank other than 0 failed first; what rank 0 saw follows from it
        rank = ranks[0].name.split("-")[1]
        result["message"] = f"rank {rank} failed: {ranks[0].read_text().strip()} (rank 0: {result['message']})"
    return result


def _same_cell(stored: dict[str, Any], asked: dict[str, Any]) -> bool:
    """The cell asked for is the one whose spec is stored, wherever the run's folder is now (a run
    moved or copied since it started keeps its finished cells)."""
    return {k: v for k, v in stored.items() if k != "cell_dir"} == {k: v for k, v in asked.items() if k != "cell_dir"}


def _memory(cfg: RunConfig, spec: CellSpec, result: dict[str, Any], runtime: str, precision: str) -> dict[str, Any]:
    d = Path(spec.cell_dir)
    out = d / f"memory-{runtime}-{precision}.json"
    probe = {"model": str(d), "input_spec": result["input_spec"], "batch": result["throughput_batch"],
             "device": cfg.device, "threads": cfg.threads, "runtime": runtime, "precision": precision,
             "out": str(out)}
    spec_path = d / f"memory-{runtime}-{precision}-spec.json"
    jsonio.write_atomic(spec_path, probe)
    out.unlink(missing_ok=True)
    launcher = worker_launcher(_launcher(cfg))
    err = launcher.run("suite.measure.memory_worker", spec_path)
    if not out.exists():
        return {"error": err or "no output"}
    memory = jsonio.read(out)
    if launcher.mode == "inline" and "source" in memory:  # the probe shared the sweep's process
        memory["source"] += " (inline launcher: measured inside the sweep's own process, not comparable)"
    return memory


def _timing(cfg: RunConfig, specs: dict[str, CellSpec], ok: dict[str, dict], baseline: str | None,
            runtime: str, precision: str) -> dict:
    first = next(iter(ok.values()))
    group_dir = Path(specs[next(iter(ok))].cell_dir).parent
    some = next(iter(specs.values()))
    name = f"timing-{some.task}-s{some.seed}-{runtime}-{precision}"
    per_model = cfg.timing_s_per_model or first["timing_s_per_model"]
    probe = Path(specs[baseline or next(iter(ok))].cell_dir) / PROBE_FILE
    spec = {"models": {v: specs[v].cell_dir for v in ok}, "baseline": baseline, "device": cfg.device,
            "threads": cfg.threads, "runtime": runtime, "precision": precision,
            "input_spec": first["input_spec"], "unit": first["throughput_unit"],
            "probe": str(probe) if probe.exists() else None,
            "timing": {"budget_s": per_model * len(ok), "throughput_batch": first["throughput_batch"],
                       "warmup_s": min(1.0, per_model / 4), "block_s": block_for(per_model)},
            "out": str(group_dir / f"{name}.json")}
    jsonio.write_atomic(group_dir / f"{name}-spec.json", spec)
    Path(spec["out"]).unlink(missing_ok=True)
    t0 = time.perf_counter()
    err = worker_launcher(_launcher(cfg)).run("suite.measure.timing_worker", group_dir / f"{name}-spec.json")
    timing = jsonio.read(spec["out"]) if Path(spec["out"]).exists() else {"error": err or "no timing written"}
    print(f"  {timing_line(f'{some.task}/seed {some.seed} {runtime} {precision}', timing)} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return timing


def _log(spec: CellSpec, r: dict[str, Any]) -> None:
    q = r.get("quality") or {}
    pm = r.get("primary_metric")
    detail = f"{pm} {q[pm]:.2f}" if pm in q else r.get("message", "")
    print(f"  {spec.task}/{spec.variant}/seed {spec.seed}: {r['status']} {detail} ({r.get('cell_seconds', 0):.0f} s)",
          file=sys.stderr)


def _torch_device(name: str) -> Any:
    import torch
    return torch.device(name)
