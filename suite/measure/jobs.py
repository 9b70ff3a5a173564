"""The messages between the sweep (or ``deploy-bench``) and its measurement workers, typed.

A job is written as JSON next to the models (``<name>-spec.json``), a worker of ``suite.launch``
reads it back, measures and writes its result to the job's ``out``; ``run_job`` does the round
trip. ``TimingJob`` asks one interleaved timing worker to time a group of deployed models under
one runtime and precision (``timing_job`` makes it, for the sweep and ``deploy-bench`` alike);
``TimingResult`` is what it writes. ``MemoryJob`` asks one memory worker for one model's peak.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, cast

from suite import jsonio
from suite.launch import Launcher
from suite.measure.interleave import block_for
from suite.parts import (
    Agreement,
    Energy,
    Generation,
    GpuState,
    HostState,
    InputSpec,
    JobInfo,
    JsonObject,
    Latency,
    Memory,
    Ratio,
    Throughput,
    TimingSettings,
)


class Message:
    """A message between processes: a frozen dataclass with a JSON round trip (``from_json`` ignores
    keys it does not know, so a reader keeps working when a writer adds one)."""

    def as_json(self) -> JsonObject:
        return cast(JsonObject, dataclasses.asdict(cast(Any, self)))

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        """The message from its JSON (the fields' types are the writer's: a message is read by the
        version of the suite that wrote it, in a worker it started)."""
        names = {f.name for f in dataclasses.fields(cast(Any, cls))}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class TimingJob(Message):
    models: dict[str, str]                 # variant -> its deployed model's folder
    baseline: str | None                   # the variant every ratio is taken to (None: no ratios)
    device: str
    runtime: str
    precision: str
    input_spec: InputSpec
    unit: str                              # throughput unit, e.g. "img/s"
    timing: TimingSettings                 # ``TimingConfig`` keywords; the row's ``timing_config``
    out: str
    threads: int | None = None
    probe: str | None = None               # saved real inputs for the agreement check


def timing_job(models: dict[str, str], *, per_model_s: float, throughput_batch: int, out: Path,
               baseline: str | None, device: str, runtime: str, precision: str, input_spec: InputSpec,
               unit: str, threads: int | None = None, probe: Path | None = None, warmup_s: float | None = None,
               measure_throughput: bool = True) -> TimingJob:
    """The timing job of a group: ``per_model_s`` seconds of interleaved rounds per model (a round's
    block from ``block_for``), a warm-up of a quarter of that (at most 1 s) unless ``warmup_s`` says,
    throughput at ``throughput_batch`` unless ``measure_throughput`` is False (latency only)."""
    timing: TimingSettings = {"budget_s": per_model_s * len(models), "throughput_batch": throughput_batch,
                              "warmup_s": min(1.0, per_model_s / 4) if warmup_s is None else warmup_s,
                              "block_s": block_for(per_model_s)}
    if not measure_throughput:
        timing["measure_throughput"] = False
    return TimingJob(models=models, baseline=baseline, device=device, runtime=runtime, precision=precision,
                     input_spec=input_spec, unit=unit, timing=timing, out=str(out), threads=threads,
                     probe=str(probe) if probe is not None and probe.exists() else None)


@dataclass(frozen=True, kw_only=True)
class ModelTiming(Message):
    """One model's figures from a timing group (each block as the row keeps it)."""
    latency: Latency
    throughput: Throughput | None = None
    generation: Generation | None = None
    runtime_info: JsonObject | None = None   # build seconds and what the runtime reports of itself
    agreement: Agreement | None = None
    energy: Energy | None = None             # per batch-1 inference, or why not (absent from older workers)

    @property
    def ratio(self) -> Ratio | None:
        return self.latency.get("ratio")


@dataclass(frozen=True, kw_only=True)
class TimingResult(Message):
    """What a timing worker wrote: each timed model, those that could not be built, the timing
    configuration and device/host state; or ``error`` when the group failed as a whole."""
    models: dict[str, ModelTiming] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    config: TimingSettings | None = None
    gpu_state: GpuState | None = None
    host_state: HostState | None = None
    runtime: str | None = None
    precision: str | None = None
    started_at: str | None = None
    error: str | None = None
    job: JobInfo | None = None                # the scheduler job the group was measured in (None: none)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        plain = super().from_json({k: v for k, v in data.items() if k != "models"})
        models = data.get("models")
        return dataclasses.replace(plain, models={v: ModelTiming.from_json(m) for v, m in models.items()}
                                   if isinstance(models, dict) else {})

    @property
    def rounds(self) -> int:
        first = next(iter(self.models.values()), None)
        return len(first.latency["round_ms"]) if first else 0


@dataclass(frozen=True, kw_only=True)
class MemoryJob(Message):
    model: str                             # the deployed model's folder
    input_spec: InputSpec
    batch: int
    device: str
    runtime: str
    precision: str
    out: str
    threads: int | None = None


def run_job(job: TimingJob | MemoryJob, worker: str, launcher: Launcher) -> JsonObject:
    """Write ``job`` beside its ``out`` (``<out stem>-spec.json``), run ``worker`` on it with
    ``launcher`` and return what it wrote, or ``{"error": ...}`` when it wrote nothing."""
    out = Path(job.out)
    spec_path = out.with_name(f"{out.stem}-spec.json")
    jsonio.write_atomic(spec_path, job.as_json())
    out.unlink(missing_ok=True)
    err = launcher.run(worker, spec_path)
    got = jsonio.read(out) if out.exists() else None
    return got if isinstance(got, dict) else {"error": err or "no output"}


def run_timing(job: TimingJob, launcher: Launcher) -> TimingResult:
    return TimingResult.from_json(run_job(job, "suite.measure.timing_worker", launcher))


def run_memory(job: MemoryJob, launcher: Launcher) -> Memory:
    """The model's memory part of a row (``peak_mb`` and its ``source``), or ``{"error": ...}``."""
    return cast(Memory, run_job(job, "suite.measure.memory_worker", launcher))   # the worker writes that shape
