"""The sweep's configuration, built once at the edge (the CLI) and passed inward, keyword-only.

``RunConfig`` is the whole sweep; ``CellSpec`` is what one cell process is asked to do (it
is written to the cell's ``spec.json`` and read back by the cell, so it holds plain values).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from suite.report.rows import cell_key
from suite.sweep.shard import Shard

LAUNCH_MODES = ("subprocess", "inline")
#: real eval inputs a cell saves next to its deployed model, for the runtimes' agreement check
PROBE_INPUTS, PROBE_FILE = 16, "probe_inputs.pt"
#: where a rank other than 0 of a multi-process cell writes why it failed (rank 0 writes result.json)
RANK_ERROR = "rank-{rank}-error.txt"


@dataclass(frozen=True, kw_only=True)
class CellSpec:
    task: str
    variant: str
    seed: int
    profile: str
    device: str
    cell_dir: str
    data_root: str | None = None
    max_steps: int | None = None
    threads: int | None = None
    variant_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    throughput_batch: int | None = None
    nproc_per_node: int = 1
    sync_bn: bool = False
    precisions: list[str] = field(default_factory=lambda: ["fp32"])  # evaluated after deploy
    amp: str | None = None                # training autocast dtype ("bf16" | "fp16"), CUDA only
    concurrent: int = 1                   # cells of the sweep training at the same time as this one

    def key(self, runtime: str = "eager", precision: str = "fp32") -> str:
        return cell_key(self.task, self.variant, self.seed, self.profile, self.device, runtime, precision)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
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
    variant_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: int | None = None
    throughput_batch: int | None = None
    nproc_per_node: int = 1
    sync_bn: bool = False
    shard: Shard | None = None            # run only this shard's (task, seed) groups
    launch: str = "subprocess"            # "subprocess" (default) or "inline" (cells in the sweep's process)
    runtimes: list[str] = field(default_factory=lambda: ["eager"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    amp: str | None = None                # training autocast on CUDA; None: the profile's default
    jobs: int = 1                         # cells trained at once (CPU), the threads split between them

    def __post_init__(self) -> None:
        if self.launch not in LAUNCH_MODES:
            raise ValueError(f"launch must be one of {LAUNCH_MODES}, got {self.launch!r}")

    @property
    def baseline(self) -> str:
        return "ln" if "ln" in self.variants else self.variants[0]

    @property
    def cell_threads(self) -> int | None:
        """Torch threads of one training cell: all of ``threads`` alone, an equal share with ``jobs``."""
        if self.jobs == 1:
            return self.threads
        return max(1, (self.threads or available_cores()) // self.jobs)

    @property
    def measurements(self) -> list[tuple[str, str]]:
        """Every (runtime, precision) each trained cell is measured under."""
        return [(r, p) for r in self.runtimes for p in self.precisions]

    def cell(self, task: str, variant: str, seed: int) -> CellSpec:
        return CellSpec(task=task, variant=variant, seed=seed, profile=self.profile, device=self.device,
                        cell_dir=str(self.out / "cells" / f"{task}-{variant}-s{seed}"),
                        data_root=None if self.data_root is None else str(self.data_root),
                        max_steps=self.max_steps, threads=self.cell_threads,
                        variant_kwargs=dict(self.variant_kwargs.get(variant, {})), batch_size=self.batch_size,
                        throughput_batch=self.throughput_batch, nproc_per_node=self.nproc_per_node,
                        sync_bn=self.sync_bn, precisions=list(self.precisions), amp=self.amp,
                        concurrent=self.jobs)

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        """The configuration ``as_json`` wrote (a run's ``run.json``); fields it lacks take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["out"] = Path(values["out"])
        values["data_root"] = None if values.get("data_root") is None else Path(values["data_root"])
        shard = values.get("shard")
        values["shard"] = None if shard is None else Shard(int(shard["index"]), int(shard["count"]))
        return cls(**values)


#: RunConfig fields that define what a cell means, with the option that sets each; a resumed run
#: refuses to change any of them (the others: --cell-timeout, the nightly options)
MEANING = {"tasks": "--tasks", "variants": "--variants", "seeds": "--seeds", "profile": "--profile",
           "device": "--device", "data_root": "--data-root", "max_steps": "--max-steps",
           "timing_s_per_model": "--timing-seconds", "threads": "--threads", "variant_kwargs": "--set",
           "batch_size": "--batch-size", "throughput_batch": "--throughput-batch",
           "nproc_per_node": "--nproc-per-node", "sync_bn": "--sync-bn", "shard": "--shard", "launch": "--inline",
           "runtimes": "--runtime", "precisions": "--precision", "amp": "--amp", "jobs": "--jobs"}


def first_difference(stored: RunConfig, asked: RunConfig) -> tuple[str, Any, Any] | None:
    """(option, stored value, asked value) of the first meaning-bearing field that differs, or None."""
    a, b = stored.as_json(), asked.as_json()
    for name, flag in MEANING.items():
        if json.dumps(a.get(name), sort_keys=True) != json.dumps(b.get(name), sort_keys=True):
            return flag, a.get(name), b.get(name)
    return None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return str(obj) if isinstance(obj, Path) else obj
