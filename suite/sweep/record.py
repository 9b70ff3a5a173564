"""One results row from what a cell and its group's timing returned (the schema: ``suite.report.rows``)."""
from __future__ import annotations

from typing import Any

from suite.env import now_iso
from suite.report.rows import SCHEMA_VERSION
from suite.sweep.config import CellSpec
from suite.sweep.distributed import DistInfo
from suite.variants import parse_variant


def make_row(ctx: dict[str, Any], spec: CellSpec, r: dict[str, Any],
             timing: dict[str, Any] | None = None) -> dict[str, Any]:
    """``ctx``: the run's ``run_id``, ``launcher`` and ``provenance``; ``r``: the cell's result
    (its status at least); ``timing``: the group's timing output (absent for a failed cell)."""
    v = parse_variant(spec.variant)
    timing = timing or {}
    t = timing.get("models", {}).get(spec.variant, {})
    real = spec.data_root is not None
    dataset = r.get("dataset") or {"kind": "real" if real else "embedded", "path": spec.data_root,
                                   "label": f"real: {spec.data_root}" if real else "embedded"}
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
        "launcher": ctx["launcher"],
        "versions": r.get("versions"), "profile_config": r.get("profile_config"),
        "timing_config": timing.get("config"), "gpu_state": timing.get("gpu_state"),
        "host_state": timing.get("host_state"),
        "provenance": ctx["provenance"], "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
        "recorded_at": now_iso(),
    }
