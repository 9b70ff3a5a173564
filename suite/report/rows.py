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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.env import REPO_ROOT
from suite.errors import UsageError

if TYPE_CHECKING:
    from suite.measure.jobs import ModelTiming, TimingResult

#: version of the row layout this suite writes; bump it (and add a migration) on any change
#: of an existing field's meaning; added optional fields keep the version
SCHEMA_VERSION = 3
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


def build_row(k: RowKey, *, run_id: str, status: str, provenance: dict[str, Any], recorded_at: str,
              message: str = "", measured: ModelTiming | None = None, timing: TimingResult | None = None,
              quality: dict[str, Any] | None = None, quality_delta: dict[str, Any] | None = None,
              primary_metric: str | None = None, metric_better: dict[str, str] | None = None,
              memory: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
              train: dict[str, Any] | None = None, deploy: dict[str, Any] | None = None,
              dataset: dict[str, Any] | None = None, distributed: dict[str, Any] | None = None,
              launcher: str = "subprocess", versions: dict[str, Any] | None = None,
              profile_config: dict[str, Any] | None = None, started_at: str | None = None,
              finished_at: str | None = None) -> dict[str, Any]:
    """One results row, every field of the schema: ``measured`` is this model's part of the timing
    group ``timing`` (absent when nothing was timed); ``distributed`` defaults to one process."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "key": k.key, "config_id": k.config_id,
        "config_group": k.config_group, "task": k.task, "variant": k.variant, "norm": k.norm,
        "attention": k.attention, "seed": k.seed, "profile": k.profile, "device": k.device,
        "status": status, "message": message, "runtime": k.runtime, "precision": k.precision,
        "quality": quality or {}, "quality_delta": quality_delta or {}, "primary_metric": primary_metric,
        "metric_better": metric_better or {},
        "latency": measured and measured.latency, "throughput": measured and measured.throughput,
        "generation": measured and measured.generation, "runtime_info": measured and measured.runtime_info,
        "agreement": measured and measured.agreement, "memory": memory,
        "model": model, "train": train, "deploy": deploy, "dataset": dataset,
        "distributed": distributed or {"world_size": 1, "backend": "none", "bn_statistics": "per-process"},
        "launcher": launcher, "versions": versions, "profile_config": profile_config,
        "timing_config": timing and timing.config, "gpu_state": timing and timing.gpu_state,
        "host_state": timing and timing.host_state,
        "provenance": provenance, "started_at": started_at, "finished_at": finished_at, "recorded_at": recorded_at,
    }


def cell_label(key: str) -> str:
    """``imagenet|un|0|smoke|cpu|eager|fp32`` -> ``imagenet/un/s0``; another runtime or precision is
    appended (``imagenet/un/s0 compile/bf16``); profile and device head the table."""
    parts = key.split("|")
    label = f"{parts[0]}/{parts[1]}/s{parts[2]}"
    if len(parts) >= 7 and (parts[5], parts[6]) != ("eager", "fp32"):
        label += f" {parts[5]}/{parts[6]}"
    return label


def latest_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row recorded for each cell key (the store is append-only)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        latest[r["key"]] = r
    return list(latest.values())


# -- schema versions ----------------------------------------------------------------------
def _v1_to_v2(row: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added ``launcher`` and made every field present (absent ones of early v1 rows are null)."""
    out = dict(row)
    dist = out.get("distributed") or {"world_size": 1, "backend": "none", "bn_statistics": "per-process"}
    out["distributed"] = dist
    for name in ("generation", "gpu_state", "host_state", "timing_config", "versions", "profile_config",
                 "started_at", "finished_at"):
        out.setdefault(name, None)
    out.setdefault("launcher", "torchrun" if (dist.get("world_size") or 1) > 1 else "subprocess")
    out["schema_version"] = 2
    return out


def _v2_to_v3(row: dict[str, Any]) -> dict[str, Any]:
    """Version 3 measures each cell under runtimes and precisions: v2 rows were eager fp32."""
    out = dict(row)
    out["key"] = f"{row['key']}|eager|fp32"
    out |= {"runtime": "eager", "precision": "fp32", "runtime_info": None, "agreement": None,
            "quality_delta": {}, "config_id": None, "config_group": None, "schema_version": 3}
    if isinstance(out.get("train"), dict):
        out["train"] = {**out["train"], "amp": None}
    return out


MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(row: dict[str, Any], where: str = "a row") -> dict[str, Any]:
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
        version = row["schema_version"]
    return row


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The published JSON Schema of a row."""
    return json.loads(Path(SCHEMA_PATH).read_text())


def validate(row: dict[str, Any]) -> None:
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
def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _nums(xs: Any) -> list[float]:
    return [float(x) for x in xs or [] if isinstance(x, (int, float)) and not isinstance(x, bool)]


def get_path(row: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a path of keys (None where any part is missing)."""
    node: Any = row
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
    """Typed, read-only access to one results row (a plain dict underneath, in ``.d``)."""

    __slots__ = ("d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d

    def _part(self, name: str) -> dict[str, Any]:
        part = self.d.get(name)
        return part if isinstance(part, dict) else {}

    @property
    def training(self) -> tuple[int, int | None]:
        """(cells trained at once, torch threads of each); (1, None) in rows from before ``--jobs``."""
        t = self._part("train")
        return int(t.get("concurrent", 1)), t.get("threads")

    # identity
    @property
    def key(self) -> str:
        return str(self.d["key"])

    @property
    def run_id(self) -> str | None:
        return self.d.get("run_id")

    @property
    def recorded_at(self) -> str | None:
        return self.d.get("recorded_at")

    @property
    def night(self) -> str | None:
        """The history night this row was appended to (rows of a history store only)."""
        return self.d.get("night")

    @property
    def recipe(self) -> dict[str, Any]:
        """The training recipe the cell ran (steps, batch, ...); empty where the row has none."""
        return dict(self._part("profile_config").get("recipe") or {})

    @property
    def in_history(self) -> bool:
        return "night" in self.d

    @property
    def history_line(self) -> dict[str, Any]:
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
        return int(self.d["seed"])

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
        return {m: v for m, v in self._part("quality_delta").items() if _num(v) is not None}

    @property
    def config_id(self) -> str | None:
        return self.d.get("config_id") or None

    @property
    def config_group(self) -> str | None:
        return self.d.get("config_group") or None

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
        return {m: v for m, v in self._part("quality").items() if _num(v) is not None}

    @property
    def metric_better(self) -> dict[str, str]:
        return dict(self._part("metric_better"))

    @property
    def primary_metric(self) -> str | None:
        return self.d.get("primary_metric") or None

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
        return (ratio.get("baseline") or None) if isinstance(ratio, dict) else None

    @property
    def log_ratios(self) -> list[float]:
        ratio = self._part("latency").get("ratio")
        return _nums(ratio.get("log_ratios")) if isinstance(ratio, dict) else []

    @property
    def throughput(self) -> float | None:
        return _num(self._part("throughput").get("value"))

    @property
    def throughput_unit(self) -> str | None:
        return self._part("throughput").get("unit")

    @property
    def throughput_batch(self) -> int | None:
        b = self._part("throughput").get("batch")
        return int(b) if isinstance(b, int) else None

    @property
    def throughput_rounds(self) -> list[float]:
        return _nums(self._part("throughput").get("round_ms"))

    @property
    def has_generation(self) -> bool:
        return bool(self.d.get("generation"))

    @property
    def gen_ms_per_token(self) -> float | None:
        return _num(self._part("generation").get("ms_per_token"))

    # memory, model, deploy
    @property
    def peak_mb(self) -> float | None:
        return _num(self._part("memory").get("peak_mb"))

    @property
    def params(self) -> int | None:
        p = self._part("model").get("params")
        return int(p) if isinstance(p, (int, float)) else None

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
    def device_info(self) -> dict[str, Any]:
        dev = self._part("provenance").get("device")
        return dev if isinstance(dev, dict) else {}

    @property
    def gpu_state(self) -> dict[str, Any] | None:
        return self.d.get("gpu_state") or None

    @property
    def tf32(self) -> dict[str, Any] | None:
        """Whether "fp32" on this row's CUDA device let cuDNN convolutions or matmuls use TF32 (None: not recorded)."""
        state = self.device_info.get("tf32")
        return state if isinstance(state, dict) else None

    @property
    def others_cpu_fraction(self) -> float | None:
        return _num(self._part("host_state").get("others_cpu_fraction"))

    @property
    def commit(self) -> str | None:
        return get_path(self.d, ("provenance", "git", "commit"))
