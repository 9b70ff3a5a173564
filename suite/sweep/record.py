"""One results row from what a cell and its group's timing returned (the schema: ``suite.report.rows``)."""
from __future__ import annotations

from typing import Any

from suite.env import now_iso
from suite.report.rows import SCHEMA_VERSION
from suite.sweep.config import CellSpec
from suite.sweep.distributed import DistInfo
from suite.sweep.identity import config_group, config_id
from suite.variants import parse_variant


def make_row(ctx: dict[str, Any], spec: CellSpec, r: dict[str, Any], timing: dict[str, Any] | None = None, *,
             runtime: str = "eager", precision: str = "fp32", plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """``ctx``: the run's ``run_id``, ``launcher`` and ``provenance``; ``r``: the cell's result
    (its status at least) with this measurement's memory; ``timing``: the output of the timing
    group of this (runtime, precision), absent when nothing was timed.

    Quality is the cell's: in fp32 the trained model's evaluation, in a low precision the
    deployed model's evaluation in that precision (with eager PyTorch), with the change
    against fp32 in ``quality_delta``. How closely this runtime reproduces eager fp32 is
    ``agreement``. ``plan`` (``suite.sweep.identity.cell_plan``) gives the row its ``config_id``
    and ``config_group``."""
    v = parse_variant(spec.variant)
    timing = timing or {}
    t = timing.get("models", {}).get(spec.variant, {})
    fp32 = r.get("quality", {})
    quality = fp32 if precision == "fp32" else (r.get("precision_quality") or {}).get(precision, {})
    quality = {} if "error" in quality else quality
    delta = {m: quality[m] - fp32[m] for m in quality
             if precision != "fp32" and isinstance(fp32.get(m), (int, float)) and quality[m] is not None}
    real = spec.data_root is not None
    dataset = r.get("dataset") or {"kind": "real" if real else "embedded", "path": spec.data_root,
                                   "label": f"real: {spec.data_root}" if real else "embedded"}
    return {
        "schema_version": SCHEMA_VERSION, "run_id": ctx["run_id"], "key": spec.key(runtime, precision),
        "config_id": None if plan is None else config_id(plan, runtime, precision),
        "config_group": None if plan is None else config_group(plan, runtime, precision),
        "task": spec.task, "variant": spec.variant, "norm": v.norm, "attention": v.attention,
        "seed": spec.seed, "profile": spec.profile, "device": spec.device,
        "status": r["status"], "message": r.get("message", ""),
        "runtime": runtime, "precision": precision,
        "quality": quality, "quality_delta": delta, "primary_metric": r.get("primary_metric"),
        "metric_better": r.get("metric_better", {}),
        "latency": t.get("latency"), "throughput": t.get("throughput"), "generation": t.get("generation"),
        "runtime_info": t.get("runtime_info"), "agreement": t.get("agreement"),
        "memory": r.get("memory"),
        "model": r.get("model"), "train": r.get("train"), "deploy": r.get("deploy"), "dataset": dataset,
        # a cell that never started (bad data) still says how it was asked to train
        "distributed": r.get("distributed") or DistInfo(world=spec.nproc_per_node).as_row(spec.sync_bn),
        "launcher": ctx["launcher"],
        "versions": r.get("versions"), "profile_config": r.get("profile_config"),
        "timing_config": timing.get("config"), "gpu_state": timing.get("gpu_state"),
        "host_state": timing.get("host_state"),
        "provenance": ctx["provenance"], "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
        "recorded_at": now_iso(),
    }
