"""The results row: the suite's main data contract.

A row is one JSON object per cell (task, variant, seed, profile, device), written by the
sweep and read by every report. Its shape is published as a JSON Schema
(``schema/row.schema.json`` at the repository root, documented field by field in
``docs/results.md``) and versioned by ``schema_version``. Readers go through this module:

- ``migrate`` brings a row of an older schema version to the current one (or refuses a
  row it cannot read with one line that names the fix);
- ``Row`` gives typed read access, so no reader digs through nested ``.get`` chains;
- ``build_row`` is the one place a row is made (the sweep, ``deploy-bench`` and the tests'
  synthetic rows all call it), from typed parts: what the row is (``RowKey``), its outcome,
  and the measurement of one timing group (``suite.measure.jobs``);
- ``latest_rows``, ``cell_key`` and ``cell_label`` identify cells.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from suite.env import REPO_ROOT
from suite.errors import UsageError
from suite.parts import (
    SCHEMA_VERSION,
    DatasetInfo,
    DeployInfo,
    Distributed,
    Energy,
    GpuState,
    JsonObject,
    LauncherName,
    LearningCurve,
    Memory,
    ModelInfo,
    ProfileConfig,
    Provenance,
    RowDoc,
    Schedule,
    SchedulerInfo,
    Status,
    TrainInfo,
    Versions,
)

if TYPE_CHECKING:
    from suite.measure.jobs import ModelTiming, TimingResult

SCHEMA_PATH = REPO_ROOT / "schema" / "row.schema.json"
STATUSES = ("ok", "error", "diverged", "not-applicable")
#: how tables and plots name the known quality metrics (others are shown by their key)
METRIC_LABEL = {"top1": "top-1 %", "top5": "top-5 %", "eval_loss": "eval loss", "map": "box mAP",
                "ap50": "AP50", "ppl": "perplexity", "bpb": "bits/byte"}


def cell_key(task: str, variant: str, seed: int, profile: str, device: str, runtime: str = "eager",
             precision: str = "fp32") -> str:
    """One row's identity: a trained cell measured under one runtime and precision."""
    return f"{task}|{variant}|{seed}|{profile}|{device}|{runtime}|{precision}"


@dataclass(frozen=True, kw_only=True)
class RowKey:
    """What a row is: a trained cell (or a deploy-bench model) measured under one runtime and precision."""
    task: str
    variant: str
    norm: str
    attention: str | None
    seed: int
    profile: str
    device: str
    runtime: str = "eager"
    precision: str = "fp32"
    config_id: str | None = None       # ``suite.sweep.identity``: what defines the result
    config_group: str | None = None    # the same without what tells variants and seeds apart

    @property
    def key(self) -> str:
        return cell_key(self.task, self.variant, self.seed, self.profile, self.device, self.runtime, self.precision)


def build_row(k: RowKey, *, run_id: str, status: Status, provenance: Provenance, recorded_at: str,
              dataset: DatasetInfo, message: str = "", measured: ModelTiming | None = None,
              timing: TimingResult | None = None, quality: dict[str, float | None] | None = None,
              quality_delta: dict[str, float | None] | None = None, primary_metric: str | None = None,
              metric_better: dict[str, str] | None = None, memory: Memory | None = None,
              model: ModelInfo | None = None, train: TrainInfo | None = None, deploy: DeployInfo | None = None,
              distributed: Distributed | None = None, launcher: LauncherName = "subprocess",
              versions: Versions | None = None, profile_config: ProfileConfig | None = None,
              started_at: str | None = None, finished_at: str | None = None,
              scheduler: SchedulerInfo | None = None) -> RowDoc:
    """One results row, every field of the schema: ``measured`` is this model's part of the timing
    group ``timing`` (absent when nothing was timed); ``distributed`` defaults to one process."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    m, t = measured, timing
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "key": k.key, "config_id": k.config_id,
        "config_group": k.config_group, "task": k.task, "variant": k.variant, "norm": k.norm,
        "attention": k.attention, "seed": k.seed, "profile": k.profile, "device": k.device,
        "status": status, "message": message, "runtime": k.runtime, "precision": k.precision,
        "quality": quality or {}, "quality_delta": quality_delta or {}, "primary_metric": primary_metric,
        "metric_better": metric_better or {},
        "latency": m.latency if m else None, "throughput": m.throughput if m else None,
        "generation": m.generation if m else None, "energy": m.energy if m else None,
        "runtime_info": m.runtime_info if m else None,
        "agreement": m.agreement if m else None, "memory": memory,
        "model": model, "train": train, "deploy": deploy, "dataset": dataset,
        "distributed": distributed or {"world_size": 1, "backend": "none", "bn_statistics": "per-process"},
        "launcher": launcher, "versions": versions, "profile_config": profile_config,
        "timing_config": t.config if t else None, "gpu_state": t.gpu_state if t else None,
        "host_state": t.host_state if t else None,
        "provenance": provenance, "started_at": started_at, "finished_at": finished_at, "recorded_at": recorded_at,
        "scheduler": scheduler,
    }


def cell_label(key: str) -> str:
    """``imagenet|un|0|smoke|cpu|eager|fp32`` -> ``imagenet/un/s0``; another runtime or precision is
    appended (``imagenet/un/s0 compile/bf16``); profile and device head the table."""
    parts = key.split("|")
    label = f"{parts[0]}/{parts[1]}/s{parts[2]}"
    if len(parts) >= 7 and (parts[5], parts[6]) != ("eager", "fp32"):
        label += f" {parts[5]}/{parts[6]}"
    return label


D = TypeVar("D", bound=Mapping[str, object])


def latest_rows(rows: Iterable[D]) -> list[D]:
    """The last row recorded for each cell key (the store is append-only)."""
    latest: dict[object, D] = {}
    for r in rows:
        latest[r["key"]] = r
    return list(latest.values())


# -- schema versions ----------------------------------------------------------------------
def _v1_to_v2(row: JsonObject) -> JsonObject:
    """Version 2 added ``launcher`` and made every field present (absent ones of early v1 rows are null)."""
    out = dict(row)
    dist = out.get("distributed")
    if not isinstance(dist, dict) or not dist:
        dist = {"world_size": 1, "backend": "none", "bn_statistics": "per-process"}
    out["distributed"] = dist
    for name in ("generation", "gpu_state", "host_state", "timing_config", "versions", "profile_config",
                 "started_at", "finished_at"):
        out.setdefault(name, None)
    world = dist.get("world_size")
    out.setdefault("launcher", "torchrun" if isinstance(world, int) and world > 1 else "subprocess")
    out["schema_version"] = 2
    return out


def _v2_to_v3(row: JsonObject) -> JsonObject:
    """Version 3 measures each cell under runtimes and precisions: v2 rows were eager fp32."""
    out = dict(row)
    out["key"] = f"{row['key']}|eager|fp32"
    out |= {"runtime": "eager", "precision": "fp32", "runtime_info": None, "agreement": None,
            "quality_delta": {}, "config_id": None, "config_group": None, "schema_version": 3}
    train = out.get("train")
    if isinstance(train, dict):
        out["train"] = {**train, "amp": None}
    return out


MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(row: JsonObject, where: str = "a row") -> RowDoc:
    """The row in the current schema version; ``UsageError`` (one line) when it cannot be read."""
    version = row.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UsageError(f"{where} has no integer schema_version: it is not a normbench results row "
                         f"(give a results folder written by run_suite.py)")
    if version > SCHEMA_VERSION:
        raise UsageError(f"{where} has schema_version {version}, newer than this suite's {SCHEMA_VERSION}; "
                         f"read it with a newer normbench (git pull)")
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise UsageError(f"{where} has schema_version {version}, which this suite cannot migrate; "
                             f"re-run the cells to record them again")
        row = MIGRATIONS[version](row)
        version = cast(int, row["schema_version"])
    return cast(RowDoc, row)   # the current layout (validated against the schema where it is written)


@lru_cache(maxsize=1)
def schema() -> JsonObject:
    """The published JSON Schema of a row."""
    return cast(JsonObject, json.loads(Path(SCHEMA_PATH).read_text()))


def validate(row: Mapping[str, object]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``row`` does not follow the published schema
    (the best match of its errors, as ``jsonschema.validate`` reports it)."""
    import jsonschema
    error = jsonschema.exceptions.best_match(_validator().iter_errors(row))
    if error is not None:
        raise error


@lru_cache(maxsize=1)
def _validator() -> Any:
    """One validator for the schema (checked once), not one per row."""
    import jsonschema
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


# -- typed access -------------------------------------------------------------------------
def _num(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _nums(xs: object) -> list[float]:
    items = xs if isinstance(xs, list) else []
    return [float(x) for x in items if isinstance(x, (int, float)) and not isinstance(x, bool)]


def _metrics(part: Mapping[str, object]) -> dict[str, float]:
    return {m: f for m, v in part.items() if (f := _num(v)) is not None}


def get_path(row: Mapping[str, object], path: tuple[str, ...]) -> object:
    """The value at a path of keys (None where any part is missing)."""
    node: object = row
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def baseline_of(rows: Iterable[Row]) -> str:
    """The variant a set of rows' ratios were taken to (the sweep's ``--baseline``, as their latency
    ratios record it), else ``ln`` where it is among them, else the first variant."""
    views = list(rows)
    named = Counter(r.ratio_baseline for r in views if r.ratio_baseline)
    variants = list(dict.fromkeys(r.variant for r in views))
    if named:
        return named.most_common(1)[0][0]
    return "ln" if "ln" in variants or not variants else variants[0]


class Row:
    """Typed, read-only access to one results row (the JSON object as read, in ``.d``: a reader
    never trusts its shape, since a store may hold rows of older versions or edited by hand)."""

    __slots__ = ("d",)

    def __init__(self, d: Mapping[str, object]) -> None:
        self.d = d

    def _part(self, name: str) -> Mapping[str, object]:
        part = self.d.get(name)
        return part if isinstance(part, dict) else {}

    def _str(self, name: str) -> str | None:
        value = self.d.get(name)
        return value if isinstance(value, str) else None

    def at(self, path: tuple[str, ...]) -> object:
        """The value at a path of keys (None where any part is missing): for readers driven by a
        table of paths, such as the comparability fingerprint (``suite.report.fingerprint``)."""
        return get_path(self.d, path)

    @property
    def curve(self) -> LearningCurve | None:
        """The learning curve the cell recorded while training (None: none recorded)."""
        curve = self._part("train").get("curve")
        return cast(LearningCurve, curve) if isinstance(curve, dict) and curve else None

    @property
    def training(self) -> tuple[int, int | None]:
        """(cells trained at once, torch threads of each); (1, None) in rows from before ``--jobs``."""
        t = self._part("train")
        concurrent, threads = t.get("concurrent", 1), t.get("threads")
        return (concurrent if isinstance(concurrent, int) else 1), (threads if isinstance(threads, int) else None)

    # identity
    @property
    def key(self) -> str:
        return str(self.d["key"])

    @property
    def run_id(self) -> str | None:
        return self._str("run_id")

    @property
    def recorded_at(self) -> str | None:
        return self._str("recorded_at")

    @property
    def night(self) -> str | None:
        """The history night this row was appended to (rows of a history store only)."""
        return self._str("night")

    @property
    def recipe(self) -> dict[str, object]:
        """The training recipe the cell ran (steps, batch, ...); empty where the row has none."""
        recipe = self._part("profile_config").get("recipe")
        return dict(recipe) if isinstance(recipe, dict) else {}

    @property
    def in_history(self) -> bool:
        return "night" in self.d

    @property
    def history_line(self) -> dict[str, object]:
        """What the history keeps beside a row's metrics: night, append time, commit, fingerprint, identity."""
        return {k: self.d.get(k) for k in ("night", "appended_at", "commit", "fingerprint_id", "key", "task",
                                           "variant", "seed", "status")}

    @property
    def task(self) -> str:
        return str(self.d["task"])

    @property
    def variant(self) -> str:
        return str(self.d["variant"])

    @property
    def seed(self) -> int:
        return int(cast(int, self.d["seed"]))

    @property
    def profile(self) -> str:
        return str(self.d.get("profile", "?"))

    @property
    def device(self) -> str:
        return str(self.d.get("device", "?"))

    @property
    def runtime(self) -> str:
        return str(self.d.get("runtime", "eager"))

    @property
    def precision(self) -> str:
        return str(self.d.get("precision", "fp32"))

    @property
    def build_s(self) -> float | None:
        return _num(self._part("runtime_info").get("build_s"))

    @property
    def agreement(self) -> float | None:
        return _num(self._part("agreement").get("rel_err"))

    @property
    def quality_delta(self) -> dict[str, float]:
        return _metrics(self._part("quality_delta"))

    @property
    def config_id(self) -> str | None:
        return self._str("config_id") or None

    @property
    def config_group(self) -> str | None:
        return self._str("config_group") or None

    @property
    def status(self) -> str:
        return str(self.d.get("status", "?"))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def message(self) -> str:
        return str(self.d.get("message") or "")

    # quality
    @property
    def quality(self) -> dict[str, float]:
        return _metrics(self._part("quality"))

    @property
    def metric_better(self) -> dict[str, str]:
        return {m: str(v) for m, v in self._part("metric_better").items()}

    @property
    def primary_metric(self) -> str | None:
        return self._str("primary_metric") or None

    # latency and throughput
    @property
    def latency_p50(self) -> float | None:
        return _num(self._part("latency").get("p50_ms"))

    @property
    def latency_rounds(self) -> list[float]:
        return _nums(self._part("latency").get("round_ms"))

    @property
    def ratio_baseline(self) -> str | None:
        ratio = self._part("latency").get("ratio")
        baseline = ratio.get("baseline") if isinstance(ratio, dict) else None
        return baseline if isinstance(baseline, str) and baseline else None

    @property
    def log_ratios(self) -> list[float]:
        ratio = self._part("latency").get("ratio")
        return _nums(ratio.get("log_ratios")) if isinstance(ratio, dict) else []

    @property
    def throughput(self) -> float | None:
        return _num(self._part("throughput").get("value"))

    @property
    def throughput_unit(self) -> str | None:
        unit = self._part("throughput").get("unit")
        return unit if isinstance(unit, str) else None

    @property
    def throughput_batch(self) -> int | None:
        b = self._part("throughput").get("batch")
        return b if isinstance(b, int) else None

    @property
    def throughput_rounds(self) -> list[float]:
        return _nums(self._part("throughput").get("round_ms"))

    @property
    def has_generation(self) -> bool:
        return bool(self.d.get("generation"))

    @property
    def gen_ms_per_token(self) -> float | None:
        return _num(self._part("generation").get("ms_per_token"))

    @property
    def energy(self) -> Energy | None:
        """The energy part (``ok``, ``unsupported`` or ``invalid``); None in rows from before it existed."""
        part = self.d.get("energy")
        return cast(Energy, part) if isinstance(part, dict) and isinstance(part.get("status"), str) else None

    @property
    def energy_mj(self) -> float | None:
        """Energy per batch-1 inference (mJ) where it was measured."""
        part = self._part("energy")
        return _num(part.get("mj_per_inference")) if part.get("status") == "ok" else None

    @property
    def energy_windows(self) -> list[float]:
        """The energy pass's per-window mJ per inference (the discarded windows left out)."""
        part = self._part("energy")
        return _nums(part.get("window_mj")) if part.get("status") == "ok" else []

    # memory, model, deploy
    @property
    def peak_mb(self) -> float | None:
        return _num(self._part("memory").get("peak_mb"))

    @property
    def params(self) -> int | None:
        p = self._part("model").get("params")
        return int(p) if isinstance(p, (int, float)) else None

    @property
    def schedule(self) -> Schedule | None:
        """The budget-tied keywords the model ran with, beside the published ones (None: not recorded)."""
        sched = self._part("model").get("schedule")
        return cast(Schedule, sched) if isinstance(sched, dict) and sched else None

    @property
    def flops(self) -> int | None:
        f = self._part("model").get("flops")
        return int(f) if isinstance(f, (int, float)) else None

    @property
    def deploy_rel_err(self) -> float | None:
        return _num(self._part("deploy").get("rel_err"))

    # data and environment
    @property
    def dataset_label(self) -> str:
        return str(self._part("dataset").get("label", "?"))

    @property
    def dataset_kind(self) -> str:
        return str(self._part("dataset").get("kind", "?"))

    @property
    def device_info(self) -> Mapping[str, object]:
        dev = self._part("provenance").get("device")
        return dev if isinstance(dev, dict) else {}

    @property
    def gpu_state(self) -> GpuState | None:
        state = self.d.get("gpu_state")
        return cast(GpuState, state) if isinstance(state, dict) and state else None

    @property
    def tf32(self) -> Mapping[str, object] | None:
        """Whether "fp32" on this row's CUDA device let cuDNN convolutions or matmuls use TF32 (None: not recorded)."""
        state = self.device_info.get("tf32")
        return state if isinstance(state, dict) else None

    @property
    def others_cpu_fraction(self) -> float | None:
        return _num(self._part("host_state").get("others_cpu_fraction"))

    @property
    def commit(self) -> str | None:
        commit = get_path(self.d, ("provenance", "git", "commit"))
        return commit if isinstance(commit, str) else None
