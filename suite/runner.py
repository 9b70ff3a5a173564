"""The sweep: tasks x seeds x variants, each cell in its own process, rows appended.

For each (task, seed) group: run the pending cells (train/eval/deploy, one process each),
measure each deployed model's memory alone (one process each), then time the group's
deployed models interleaved in one process, and append one row per cell. A cell that
fails is a row with its status and message; the sweep goes on.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from suite import jsonio
from suite.cell import CellSpec, cell_key
from suite.distributed import DistInfo
from suite.env import REPO_ROOT, SCHEMA_VERSION, now_iso, provenance
from suite.errors import DataError, UsageError
from suite.leaderboard import write_reports
from suite.shard import Shard, shard_groups
from suite.store import Store
from suite.variants import parse_variant
from tasks import TASKS


@dataclass
class RunConfig:
    tasks: list[str]
    variants: list[str]
    seeds: list[int]
    out: Path
    profile: str = "smoke"
    device: str = "cpu"                   # resolved: "cpu" or "cuda"
    data_root: Path | None = None
    resume: bool = False
    max_steps: int | None = None
    timing_s_per_model: float | None = None
    threads: int | None = None
    cell_timeout_s: float | None = None
    variant_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    throughput_batch: int | None = None
    nproc_per_node: int = 1
    sync_bn: bool = False
    shard: Shard | None = None            # run only this shard's (task, seed) groups

    @property
    def baseline(self) -> str:
        return "ln" if "ln" in self.variants else self.variants[0]


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
        run_id = uuid.uuid4().hex[:12]
        jsonio.write_atomic(cfg.out / "run.json", {"run_id": run_id, "started_at": now_iso(),
                                                  "argv": sys.argv, "config": _jsonable(asdict(cfg))})
        ctx = {"run_id": run_id, "provenance": provenance(_torch_device(cfg.device))}
        done, errors = store.done_keys(), 0
        mine = set(shard_groups(cfg.tasks, cfg.seeds, cfg.shard))
        for task in cfg.tasks:
            for seed in cfg.seeds:
                if (task, seed) not in mine:
                    continue
                keys = {v: cell_key(task, v, seed, cfg.profile, cfg.device) for v in cfg.variants}
                pending = [v for v in cfg.variants if keys[v] not in done]
                if task in bad:
                    rows = [_row(cfg, ctx, _spec(cfg, task, v, seed), {"status": "error", "message": bad[task]})
                            for v in pending]
                else:
                    rows = _run_group(cfg, ctx, task, seed, pending)
                for row in rows:
                    store.append(row)
                    errors += row["status"] == "error"
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


def _run_group(cfg: RunConfig, ctx: dict[str, Any], task: str, seed: int, pending: list[str]) -> list[dict]:
    if not pending:
        return []
    specs = {v: _spec(cfg, task, v, seed) for v in cfg.variants}
    results: dict[str, dict[str, Any]] = {}
    for v in pending:
        results[v] = _cell_result(cfg, specs[v])
        _log(task, v, seed, results[v])
    base = cfg.baseline
    if base not in results:  # recorded earlier: reuse its deployed model for paired ratios
        prior = Path(specs[base].cell_dir) / "result.json"
        if prior.exists() and (Path(specs[base].cell_dir) / "deployed.pt").exists():
            results[base] = jsonio.read(prior)
    ok = {v: r for v, r in results.items() if r["status"] == "ok"}
    timing = _timing(cfg, specs, ok, base if base in ok else None) if ok else {}
    rows = []
    for v in pending:
        r = results[v]
        if r["status"] == "ok":
            r["memory"] = _memory(cfg, specs[v], r)
            if "error" in timing:
                r |= {"status": "error", "message": f"timing failed: {timing['error']}"}
            elif "error" in r["memory"]:
                r |= {"status": "error", "message": f"memory probe failed: {r['memory']['error']}"}
        rows.append(_row(cfg, ctx, specs[v], r, timing))
    return rows


def _spec(cfg: RunConfig, task: str, variant: str, seed: int) -> CellSpec:
    cell_dir = cfg.out / "cells" / f"{task}-{variant}-s{seed}"
    return CellSpec(task, variant, seed, cfg.profile, cfg.device, str(cell_dir),
                    None if cfg.data_root is None else str(cfg.data_root), cfg.max_steps, cfg.threads,
                    dict(cfg.variant_kwargs.get(variant, {})), cfg.batch_size, cfg.throughput_batch,
                    cfg.nproc_per_node, cfg.sync_bn)


def _cell_result(cfg: RunConfig, spec: CellSpec) -> dict[str, Any]:
    d = Path(spec.cell_dir)
    res_path, spec_path = d / "result.json", d / "spec.json"
    if res_path.exists() and spec_path.exists() and jsonio.read(spec_path) == asdict(spec):
        prior = jsonio.read(res_path)  # a finished cell from a run killed before its rows landed
        if prior.get("status") == "ok" and (d / "deployed.pt").exists():
            return prior
    d.mkdir(parents=True, exist_ok=True)
    res_path.unlink(missing_ok=True)
    jsonio.write_atomic(spec_path, asdict(spec))
    launch = ["-m", "suite.cell", str(spec_path)]
    if cfg.nproc_per_node > 1:  # one cell, several processes (DDP) under torchrun
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={cfg.nproc_per_node}", *launch]
    err = _subprocess(launch, cfg.cell_timeout_s)
    if res_path.exists():
        return jsonio.read(res_path)
    return {"status": "error", "message": err or "cell process ended without writing its result"}


def _memory(cfg: RunConfig, spec: CellSpec, result: dict[str, Any]) -> dict[str, Any]:
    d = Path(spec.cell_dir)
    probe = {"model_path": str(d / "deployed.pt"), "input_spec": result["input_spec"],
             "batch": result["throughput_batch"], "device": cfg.device, "threads": cfg.threads}
    jsonio.write_atomic(d / "memory_spec.json", probe)
    out = _subprocess(["-m", "suite.memory", str(d / "memory_spec.json")], cfg.cell_timeout_s, capture=True)
    try:
        return json.loads(out.strip().splitlines()[-1]) if out else {"error": "no output"}
    except (ValueError, IndexError):
        return {"error": out.strip().splitlines()[-1][:300] if out.strip() else "no output"}


def _timing(cfg: RunConfig, specs: dict[str, CellSpec], ok: dict[str, dict], baseline: str | None) -> dict:
    first = next(iter(ok.values()))
    group_dir = Path(specs[next(iter(ok))].cell_dir).parent
    name = f"timing-{next(iter(specs.values())).task}-s{next(iter(specs.values())).seed}"
    per_model = cfg.timing_s_per_model or first["timing_s_per_model"]
    spec = {"models": {v: str(Path(specs[v].cell_dir) / "deployed.pt") for v in ok},
            "baseline": baseline, "device": cfg.device, "threads": cfg.threads,
            "input_spec": first["input_spec"], "unit": first["throughput_unit"],
            "timing": {"budget_s": per_model * len(ok), "throughput_batch": first["throughput_batch"],
                       "warmup_s": min(1.0, per_model / 4)},
            "out": str(group_dir / f"{name}.json")}
    jsonio.write_atomic(group_dir / f"{name}-spec.json", spec)
    Path(spec["out"]).unlink(missing_ok=True)
    err = _subprocess(["-m", "suite.timing", str(group_dir / f"{name}-spec.json")], cfg.cell_timeout_s)
    return jsonio.read(spec["out"]) if Path(spec["out"]).exists() else {"error": err or "no timing written"}


def _subprocess(args: list[str], timeout: float | None, capture: bool = False) -> str:
    """Run ``python ARGS``; returns captured stdout (capture) or a failure message ('' if fine)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run([sys.executable, *args], env=env, timeout=timeout, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s (--cell-timeout)"
    if capture:
        return proc.stdout if proc.returncode == 0 else (proc.stderr or proc.stdout or f"exit {proc.returncode}")
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return f"process killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
    return "" if proc.returncode == 0 else f"process exited with status {proc.returncode}"


def _row(cfg: RunConfig, ctx: dict[str, Any], spec: CellSpec, r: dict[str, Any],
         timing: dict[str, Any] | None = None) -> dict[str, Any]:
    v = parse_variant(spec.variant)
    t = (timing or {}).get("models", {}).get(spec.variant, {})
    dataset = r.get("dataset") or {"kind": "embedded" if cfg.data_root is None else "real",
                                   "path": None if cfg.data_root is None else str(cfg.data_root),
                                   "label": "embedded" if cfg.data_root is None else f"real: {cfg.data_root}"}
    return {
        "schema_version": SCHEMA_VERSION, "run_id": ctx["run_id"], "key": spec.key,
        "task": spec.task, "variant": spec.variant, "norm": v.norm, "attention": v.attention,
        "seed": spec.seed, "profile": spec.profile, "device": spec.device,
        "status": r["status"], "message": r.get("message", ""),
        "quality": r.get("quality", {}), "primary_metric": r.get("primary_metric"),
        "metric_better": r.get("metric_better", {}),
        "latency": t.get("latency"), "throughput": t.get("throughput"), "generation": t.get("generation"),
        "memory": r.get("memory"),
        "model": r.get("model"), "train": r.get("train"), "deploy": r.get("deploy"), "dataset": dataset,
        # a cell that never started (bad data) still says how it was asked to train
        "distributed": r.get("distributed") or DistInfo(world=spec.nproc_per_node).as_row(spec.sync_bn),
        "versions": r.get("versions"), "profile_config": r.get("profile_config"),
        "timing_config": (timing or {}).get("config"), "gpu_state": (timing or {}).get("gpu_state"),
        "host_state": (timing or {}).get("host_state"),
        "provenance": ctx["provenance"], "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
        "recorded_at": now_iso(),
    }


def _log(task: str, variant: str, seed: int, r: dict[str, Any]) -> None:
    q = r.get("quality") or {}
    pm = r.get("primary_metric")
    detail = f"{pm} {q[pm]:.2f}" if pm in q else r.get("message", "")
    print(f"  {task}/{variant}/seed {seed}: {r['status']} {detail} ({r.get('cell_seconds', 0):.0f} s)", file=sys.stderr)


def _torch_device(name: str) -> Any:
    import torch
    return torch.device(name)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return str(obj) if isinstance(obj, Path) else obj
