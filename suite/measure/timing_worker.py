"""Interleaved timing of a group of deployed models, a worker of ``suite.launch``.

``python -m suite.measure.timing_worker SPEC.json``: a group is the variants of one task and
seed under one runtime and precision; they are built into one process (``suite.measure.prepare``)
and timed in rounds (``suite.measure.interleave``), so each variant's ratio to the baseline is
paired inside one process and one runtime. Writes the job's ``out`` with one entry per model
(timing, energy per inference, build cost, agreement with eager fp32) plus the device and host
state, the models that could not be built (``failed``), or ``{"error": ...}`` when the group fails
as a whole.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import torch
from tqdm import tqdm

from suite import faults
from suite.env import interactive, now_iso
from suite.measure.alloc import steady_malloc
from suite.measure.energy import meter_for, unsupported
from suite.measure.gpu import StateSampler
from suite.measure.inputs import make_input
from suite.measure.interleave import TimingConfig, time_interleaved
from suite.measure.jobs import TimingJob, TimingResult
from suite.measure.prepare import Prepared, prepare, probe_batch
from suite.measure.runtimes import PRECISIONS
from suite.measure.worker import describe_error, run_worker
from suite.parts import (
    Agreement,
    Energy,
    Generation,
    GenerationSpec,
    GpuState,
    HostState,
    InputSpec,
    JsonObject,
    Latency,
    NvmlState,
    Throughput,
    TimingSettings,
)


class ModelOutput(TypedDict):
    """One model's entry in the worker's output (read back as ``suite.measure.jobs.ModelTiming``)."""
    latency: Latency
    throughput: Throughput
    runtime_info: JsonObject
    agreement: Agreement | None
    energy: Energy                         # ``unsupported`` with the reason where there is no counter
    generation: NotRequired[Generation]


class GroupOutput(TypedDict):
    """What the worker writes (read back as ``suite.measure.jobs.TimingResult``)."""
    started_at: str
    config: TimingSettings                 # the job's timing keywords and the allocator's settings
    failed: dict[str, str]
    runtime: str
    precision: str
    models: dict[str, ModelOutput]
    gpu_state: NotRequired[GpuState | None]
    host_state: NotRequired[HostState]


def run_group(spec: Mapping[str, object]) -> GroupOutput:
    """Build every model of the group (a ``TimingJob``) under its runtime and precision, then time
    them interleaved. A model that cannot be built is reported in ``failed`` and left out; the rest
    are still timed (without it, and without ratios when it was the baseline)."""
    faults.point("timing")
    job = TimingJob.from_json(spec)
    malloc = steady_malloc()
    device = torch.device(job.device)
    runtime, precision = job.runtime, job.precision
    dtype = PRECISIONS[precision]
    cfg = TimingConfig.from_settings(job.timing)
    shapes = (1, cfg.throughput_batch) if cfg.measure_throughput else (1,)  # latency only: one shape to build
    examples = [make_input(job.input_spec, b, device, dtype) for b in shapes]
    probe = torch.load(job.probe, weights_only=True) if job.probe else None
    probe = None if probe is None else probe_batch(probe, shapes[-1]).to(device)
    prepared: dict[str, Prepared] = {}
    failed: dict[str, str] = {}
    for name, folder in job.models.items():
        try:
            prepared[name] = prepare(Path(folder), device=device, runtime=runtime, precision=precision,
                                     examples=examples, threads=job.threads, probe=probe)
        except Exception as e:  # noqa: BLE001 - this model's row records it; the group goes on
            traceback.print_exc()
            failed[name] = f"{runtime} could not build it: {describe_error(e)}"
    out: GroupOutput = {"started_at": now_iso(), "config": {**job.timing, **malloc}, "failed": failed,
                        "runtime": runtime, "precision": precision, "models": {}}
    if not prepared:
        return out
    baseline = job.baseline if job.baseline in prepared else None
    state_before = _gpu_state(device)
    sampler = StateSampler(lambda: _gpu_state(device), lambda: _violations(device))
    meter, no_energy = meter_for(device)
    host = HostLoad()
    bar = tqdm(desc=f"timing {len(prepared)} models ({runtime}, {precision})", unit="round", leave=False,
               mininterval=1.0, disable=not interactive())  # a log gets the group's one line from the sweep

    def each_round(rounds: int, seconds: float) -> None:
        sampler.sample()  # between rounds, after their synchronize: never inside a timed block
        bar.update(1)

    timings = time_interleaved({n: p.built.fn for n, p in prepared.items()},
                               lambda b: make_input(job.input_spec, b, device, dtype), cfg, device,
                               baseline=baseline, progress=each_round, energy=meter)
    bar.close()
    gpu_state: GpuState | None = None if state_before is None else {
        "before": state_before, "during": sampler.summary(), "after": _gpu_state(device)}
    items = job.input_spec.get("items", 1)
    rows: dict[str, ModelOutput] = {n: {**t.as_row(job.unit, items), "runtime_info": _runtime_info(prepared[n]),
                                        "agreement": prepared[n].agreement,
                                        "energy": t.energy or unsupported(no_energy or "no energy measured")}
                                    for n, t in timings.items()}
    gen = job.input_spec.get("generation")
    if gen and runtime == "eager":  # generation (a Python loop over the KV cache) is timed in eager only
        lms = {n: p.model for n, p in prepared.items()}
        for n, g in time_generation(lms, gen, job, device, baseline).items():
            rows[n]["generation"] = g
    return {**out, "gpu_state": gpu_state, "host_state": host.finish(), "models": rows}


def timing_line(what: str, timing: TimingResult) -> str:
    """One line for a finished timing group: what, how many models and rounds, each model's batch-1
    latency ratio to the baseline (the headline figure)."""
    if timing.error is not None:
        return f"timing {what}: error {timing.error}"
    models = timing.models
    ratios = [f"{v} {m.ratio['value']:.3f}" for v, m in models.items()
              if m.ratio and m.ratio.get("value") is not None and m.ratio["baseline"] != v]
    base = next((m.ratio["baseline"] for m in models.values() if m.ratio), None)
    head = f"; batch-1 latency / {base}: {', '.join(ratios)}" if ratios else ""
    failed = f"; {len(timing.failed)} could not be built" if timing.failed else ""
    energy = [f"{v} {e['mj_per_inference']:.4g}" for v, m in models.items()
              if (e := m.energy) and e.get("status") == "ok" and "mj_per_inference" in e]
    joules = f"; mJ/inference: {', '.join(energy)}" if energy else ""
    return (f"timing {what}: {len(models)} model{'' if len(models) == 1 else 's'}, {timing.rounds} rounds"
            f"{head}{joules}{failed}")



class HostLoad:
    """How much of the machine's CPU time other processes took while this process timed.

    On a small CPU machine a second busy process makes PyTorch's threads contend and can
    slow every model several-fold; the interleaving keeps ratios paired but the absolute
    figures are then wrong. System-wide busy CPU time minus this process's own, over the
    wall time times the CPU count, says how loaded the machine was by others."""

    def __init__(self) -> None:
        import psutil
        self.proc, self.cpus = psutil.Process(), psutil.cpu_count() or 1
        self.t0, self.sys0, self.own0 = time.perf_counter(), self._busy(), self._own()

    @staticmethod
    def _busy() -> float:
        import psutil
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _own(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def finish(self) -> HostState:
        wall = time.perf_counter() - self.t0
        others = max(0.0, (self._busy() - self.sys0) - (self._own() - self.own0))
        return {"cpus": self.cpus, "wall_s": wall, "others_cpu_fraction": others / max(wall * self.cpus, 1e-9),
                "loadavg_1m": os.getloadavg()[0]}


class Generate(torch.nn.Module):
    """Greedy generation of a fixed number of new tokens with the KV cache, as one timed call."""

    def __init__(self, lm: torch.nn.Module, new_tokens: int) -> None:
        super().__init__()
        self.lm, self.new_tokens = lm, new_tokens

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lm: Any = self.lm  # a transformers model: ``generate`` is its own
        return lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.new_tokens,
                           min_new_tokens=self.new_tokens, do_sample=False, use_cache=True, pad_token_id=0)


def time_generation(models: dict[str, torch.nn.Module], gen: GenerationSpec, job: TimingJob,
                    device: torch.device, baseline: str | None) -> dict[str, Generation]:
    """Latency per generated token at batch 1, the models interleaved as for the forward timing."""
    k = int(gen["new_tokens"])
    wrapped = {n: Generate(m, k).eval() for n, m in models.items()}
    prompt: InputSpec = {**job.input_spec, "seq_len": int(gen["prompt"])}
    cfg = dataclasses.replace(TimingConfig.from_settings(job.timing), budget_s=job.timing["budget_s"] / 2,
                              measure_throughput=False, throughput_batch=1)
    t = time_interleaved(wrapped, lambda b: make_input(prompt, b, device), cfg, device, baseline=baseline)
    return {n: {"prompt_tokens": int(gen["prompt"]), "new_tokens": k, "p50_ms": r.summary["p50_ms"],
                "ms_per_token": r.summary["p50_ms"] / k,
                "ratio": None if r.ratio is None else {"baseline": r.ratio.baseline, "value": r.ratio.value,
                                                       "lo": r.ratio.lo, "hi": r.ratio.hi}}
            for n, r in t.items()}


def _runtime_info(p: Prepared) -> JsonObject:
    """The build's seconds, then what the runtime reports of itself."""
    return {"build_s": p.built.build_s, **p.built.info}


def _gpu_state(device: torch.device) -> NvmlState | None:
    if device.type != "cuda":
        return None
    from suite.measure.gpu import gpu_state
    return gpu_state(device.index or 0)


def _violations(device: torch.device) -> dict[str, int] | None:
    if device.type != "cuda":
        return None
    from suite.measure.gpu import violation_ns
    return violation_ns(device.index or 0)


def main(spec_path: str) -> int:
    return run_worker(spec_path, run_group)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
