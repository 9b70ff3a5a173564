"""``run_suite.py deploy-bench``: deployed latency of every variant on one architecture, per runtime and precision.

Each variant's model (random init, a few train-mode forwards so running statistics exist)
is deployed and saved like a sweep's cell (weights plus build description). Then, for every
(runtime, precision), one timing worker process builds all deployed models under that
runtime and times them together in interleaved rounds: batch 1 (latency) and batch
``batch`` (throughput pass). Each variant is reported as a ratio to ``none`` (identity norms:
the cost-free lower bound) and to ``ln``, paired per round, with 95% intervals, next to what
building it cost (compile, export) and how closely it reproduces eager fp32 (agreement, on
random inputs of the timed shape). A faithful fold costs nothing, so folded variants should
sit at 1.00 of ``none``.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
import torch
from tabulate import tabulate

from suite import jsonio
from suite.bench.common import BenchSetup, report_dir, setup, write_report
from suite.env import now_iso
from suite.jsonio import json_kwargs
from suite.launch import Launcher
from suite.measure.inputs import make_input
from suite.measure.interleave import ratio_ci
from suite.measure.jobs import ModelTiming, TimingResult, run_timing, timing_job
from suite.measure.runtimes import RUNTIMES, precision_unsupported
from suite.measure.timing_worker import timing_line
from suite.models.artifact import build, save_deployed
from suite.models.create import LM_CONFIGS
from suite.models.deploy import deploy
from suite.parts import BuildArgs, GpuState, HostState, InputSpec, Json, JsonObject, RowDoc, Status
from suite.regression.nightly import NightlyOptions, finish
from suite.report.rows import RowKey, build_row
from suite.report.store import Store
from suite.variants import NORMS, parse_variant
from suite.variants.base import budget_kwargs

BASELINES = ("none", "ln")
PROBE_SEED = 99  # agreement inputs: random like the timing inputs, but not the same tensors
Pass = Literal["latency", "throughput"]


@dataclass(frozen=True, kw_only=True)
class VariantLine:
    """One variant's line of a group's summary: its batch-1 median, the median round at ``batch``
    (0: latency only), its ratios to each baseline per pass, what building it cost and how closely
    it reproduces eager fp32. ``as_json`` is its line of ``report.json`` (whose keys name the batch)."""
    variant: str
    p50_b1_ms: float
    build_s: float | None
    agreement: float | None
    runtime_info: JsonObject | None
    params: int | None
    batch: int = 0
    median_batch_ms: float | None = None
    #: ``<pass>_vs_<baseline>`` (``b1_vs_ln``, ``b32_vs_none``...) -> [value, lo, hi]
    ratios: dict[str, list[float]] = field(default_factory=dict)

    def as_json(self) -> JsonObject:
        out: JsonObject = {"variant": self.variant, "p50_b1_ms": self.p50_b1_ms, "build_s": self.build_s,
                           "agreement": self.agreement, "runtime_info": self.runtime_info, "params": self.params}
        if self.batch:
            out[f"median_b{self.batch}_ms"] = self.median_batch_ms
        for key, (value, lo, hi) in self.ratios.items():
            out[key] = [value, lo, hi]
        return out


class Group(TypedDict, total=False):
    """One (runtime, precision) group of the report: why it was not timed (``not_applicable``), why
    its worker failed (``error``), or its summary; ``warm_builds``: each model's build beforehand."""
    not_applicable: str
    error: str
    rows: list[VariantLine]
    failed: dict[str, str]
    rounds: int
    host_state: HostState | None
    gpu_state: GpuState | None
    warm_builds: dict[str, JsonObject]


class BenchArgs(TypedDict):
    """The arguments a deploy-bench ran with (``report.json``'s ``args``)."""
    model: str
    img_size: int
    seq_len: int
    variants: list[str]
    batch: int
    seconds: float
    runtimes: list[str]
    precisions: list[str]
    device: str
    threads: int | None
    build_jobs: int


class DeployReport(TypedDict):
    """``report.json`` (``write_report`` adds allocation, time and provenance): the groups so far,
    ``complete`` once every (runtime, precision) has one."""
    args: BenchArgs
    input_spec: InputSpec
    groups: dict[str, dict[str, object]]    # ``group_json`` of each ``Group``
    complete: bool


def build_args(model_name: str, variant: str, img_size: int) -> BuildArgs:
    """The build description of a deploy-bench model (the same format a sweep's cell saves)."""
    v = parse_variant(variant)
    lm = model_name in LM_CONFIGS
    return {"factory": "model", "name": model_name, "variant": v.name,
            "variant_kwargs": json_kwargs(budget_kwargs(v.norm_cls, 100, "lm" if lm else "vision")),
            "kwargs": {} if lm else {"img_size": img_size}, "call": "logits" if lm else "module"}


def input_spec(model_name: str, img_size: int, seq_len: int) -> InputSpec:
    if model_name in LM_CONFIGS:
        vocab = int(LM_CONFIGS[model_name][1]["vocab_size"])
        return {"kind": "tokens", "seq_len": seq_len, "vocab_size": vocab, "items": seq_len}
    return {"kind": "image", "shape": [3, img_size, img_size]}


def build_deployed(args: BuildArgs, spec: InputSpec, device: torch.device | str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(args).to(device)  # as the timing worker rebuilds it from the saved description
    short: InputSpec = {**spec, "seq_len": min(spec["seq_len"], 64)} if spec["kind"] == "tokens" else spec
    x = make_input(short, 4, device)
    with torch.no_grad():
        for _ in range(3):  # running statistics and schedules move off their init
            model.train()(x)
    return deploy(model.eval())


def run_deploy_bench(*, model: str, img_size: int, seq_len: int, variants: list[str] | None, batch: int,
                     seconds: float, runtimes: list[str], precisions: list[str], device: str, threads: int | None,
                     out: Path | None, results_dir: Path, nightly: NightlyOptions | None = None,
                     build_jobs: int = 1) -> int:
    """Build and save every variant's deployed model here, on the CPU (this process never touches
    the GPU, so it holds no CUDA context while the workers time it), then one timing worker per
    (runtime, precision), its compile caches warmed by ``build_jobs`` processes first where the
    runtime has them. ``batch`` 0 times batch-1 latency only. The report, ``report.json`` and the
    rows are written after every group, so a bench stopped half-way (a budget, a lost machine)
    keeps the groups it finished."""
    bench = setup(device, threads)
    names = list(variants) if variants else NORMS.names()
    names += [b for b in BASELINES if b not in names]
    folder = report_dir(out, results_dir, "deploy-bench", device)
    spec_in = input_spec(model, img_size, seq_len)
    params = save_models(folder / "models", model, names, img_size, spec_in)
    torch.save(make_input(spec_in, batch or 1, "cpu", seed=PROBE_SEED), folder / "probe_inputs.pt")
    run_id = uuid.uuid4().hex[:12]
    groups: dict[str, Group] = {}
    rows: list[RowDoc] = []
    store = Store(folder, schema=False)  # bench rows carry timing only (no training, no quality)
    for runtime in runtimes:
        for precision in precisions:
            label = f"{runtime} {precision}"
            reason = RUNTIMES.get(runtime).unsupported(bench.device, precision) or \
                precision_unsupported(bench.device, precision)
            result = TimingResult()
            if reason:
                groups[label] = {"not_applicable": reason}
            else:
                warmed = warm_builds(folder, names, runtime=runtime, precision=precision, device=device,
                                     spec_in=spec_in, batch=batch, jobs=build_jobs)
                t0 = time.perf_counter()
                result = time_group(folder, names, runtime=runtime, precision=precision, device=device,
                                    threads=threads, spec_in=spec_in, batch=batch, seconds=seconds)
                groups[label] = summarize(result, names, batch, params)
                if warmed:
                    groups[label]["warm_builds"] = warmed
                print(f"{timing_line(f'{model} {label}', result)} ({time.perf_counter() - t0:.0f} s)", flush=True)
            new = bench_rows({label: result}, {label: groups[label]}, model=model, spec=spec_in, names=names,
                             device=device, bench=bench, run_id=run_id)
            for row in new:
                store.append(row)
            rows += new
            md = render(groups, model=model, spec=spec_in, batch=batch, seconds=seconds, bench=bench)
            report: DeployReport = {
                "args": {"model": model, "img_size": img_size, "seq_len": seq_len, "variants": names, "batch": batch,
                         "seconds": seconds, "runtimes": runtimes, "precisions": precisions, "device": device,
                         "threads": threads, "build_jobs": build_jobs},
                "input_spec": spec_in, "groups": {k: group_json(g) for k, g in groups.items()},
                "complete": len(groups) == len(runtimes) * len(precisions)}
            write_report(folder, md, report, bench, quiet=len(groups) < len(runtimes) * len(precisions))
    return 0 if nightly is None else finish(folder, rows, nightly)


def save_models(models_dir: Path, model: str, names: list[str], img_size: int,
                spec_in: InputSpec) -> dict[str, int]:
    """Each variant deployed and saved (weights plus build description), built on the CPU; its
    parameter count."""
    params = {}
    for v in names:
        args = build_args(model, v, img_size)
        (models_dir / v).mkdir(parents=True, exist_ok=True)
        deployed = build_deployed(args, spec_in, "cpu")
        params[v] = sum(p.numel() for p in deployed.parameters())
        save_deployed(models_dir / v, deployed, args)
    return params


def warm_builds(folder: Path, names: list[str], *, runtime: str, precision: str, device: str,
                spec_in: InputSpec, batch: int, jobs: int) -> dict[str, JsonObject]:
    """Build every model under a caching runtime, ``jobs`` processes at once, before its timing
    group, so that the timing worker's own builds read the compiled code back from disk. Each
    model's build seconds here, or why it failed (the timing worker then builds it cold)."""
    from concurrent.futures import ThreadPoolExecutor
    if jobs <= 1 or not getattr(RUNTIMES.get(runtime), "build_cache", False):
        return {}
    warm = folder / "warm"
    warm.mkdir(exist_ok=True)

    def one(v: str) -> JsonObject:
        spec_path, out = warm / f"{v}-{runtime}-{precision}-spec.json", warm / f"{v}-{runtime}-{precision}.json"
        jsonio.write_atomic(spec_path, {"model": str(folder / "models" / v), "device": device, "runtime": runtime,
                                        "precision": precision, "input_spec": spec_in,
                                        "batches": [1, batch] if batch else [1], "out": str(out)})
        err = Launcher(mode="subprocess").run("suite.measure.build_worker", spec_path)
        return jsonio.read(out) if out.exists() else {"error": err or "no output"}

    with ThreadPoolExecutor(max_workers=min(jobs, len(names))) as pool:
        return dict(zip(names, pool.map(one, names)))


def time_group(folder: Path, names: list[str], *, runtime: str, precision: str, device: str, threads: int | None,
               spec_in: InputSpec, batch: int, seconds: float) -> TimingResult:
    """One timing worker over every saved model under (runtime, precision): ``seconds`` in all, a
    warm-up of an eighth of that (at most 1 s), throughput at ``batch`` (0: latency only)."""
    job = timing_job({v: str(folder / "models" / v) for v in names}, per_model_s=seconds / len(names),
                     throughput_batch=batch or 1, measure_throughput=bool(batch), warmup_s=min(1.0, seconds / 8),
                     baseline="ln", device=device, threads=threads, runtime=runtime, precision=precision,
                     input_spec=spec_in, unit="items/s", probe=folder / "probe_inputs.pt",
                     out=folder / f"timing-{runtime}-{precision}.json")
    return run_timing(job, Launcher(mode="subprocess"))


def bench_rows(raw: dict[str, TimingResult], groups: dict[str, Group], *, model: str, spec: InputSpec,
               names: list[str], device: str, bench: BenchSetup, run_id: str) -> list[RowDoc]:
    """One row per (variant, runtime, precision), shaped like a sweep's rows (``build_row``): key,
    status, latency and throughput with their per-round data, the ratio to ``ln``, runtime facts,
    agreement, provenance; no quality, training or memory."""
    task = f"deploy-bench:{model}"
    size = f"{spec['seq_len']}tok" if spec["kind"] == "tokens" else f"{spec['shape'][-1]}px"
    now = now_iso()
    rows: list[RowDoc] = []
    for label, g in groups.items():
        runtime, precision = label.split()
        result = raw.get(label) or TimingResult()
        for v in names:
            m = result.models.get(v)
            why = g.get("not_applicable") or g.get("error") or result.failed.get(v)
            status: Status = "ok" if m else ("not-applicable" if "not_applicable" in g else "error")
            parsed = parse_variant(v)
            key = RowKey(task=task, variant=v, norm=parsed.norm, attention=parsed.attention, seed=0, profile=size,
                         device=device, runtime=runtime, precision=precision)
            rows.append(build_row(key, run_id=run_id, status=status, message="" if m else str(why or "not measured"),
                                  provenance=bench.provenance,
                                  recorded_at=now, measured=m, timing=result,
                                  dataset={"kind": "embedded", "path": None,
                                           "label": "random inputs (deploy-bench)"}))
    return rows


def summarize(result: TimingResult, names: list[str], batch: int, params: dict[str, int]) -> Group:
    """Per variant: latencies, ratios to ``ln`` and ``none`` (paired per round), build cost, agreement."""
    if result.error is not None:
        return {"error": result.error}
    models = result.models
    rows = []
    for v in [n for n in names if n in models]:
        m = models[v]
        passes: list[tuple[str, Pass]] = [("b1", "latency")]
        if batch:  # 0: batch-1 latency only
            passes.append((f"b{batch}", "throughput"))
        ratios = {}
        for base in BASELINES:
            if base not in models:
                continue
            for tag, key in passes:
                r = ratio_ci(np.log(round_ms(m, key)) - np.log(round_ms(models[base], key)), baseline=base)
                ratios[f"{tag}_vs_{base}"] = [r.value, r.lo, r.hi]
        rows.append(VariantLine(variant=v, p50_b1_ms=m.latency["p50_ms"],
                                build_s=number((m.runtime_info or {}).get("build_s")),
                                agreement=m.agreement.get("rel_err") if m.agreement else None,
                                runtime_info=m.runtime_info, params=params.get(v), batch=batch,
                                median_batch_ms=float(np.median(round_ms(m, "throughput"))) if batch else None,
                                ratios=ratios))
    return {"rows": rows, "failed": result.failed, "rounds": result.rounds,
            "host_state": result.host_state, "gpu_state": result.gpu_state}


def round_ms(m: ModelTiming, key: Pass) -> np.ndarray:
    """A pass's per-round medians (a round's NaN comes back from JSON as None: NaN again); a
    ``KeyError`` when the worker did not measure that pass."""
    block = m.latency if key == "latency" else m.throughput
    if block is None:
        raise KeyError(f"no {key} measured")
    return np.asarray(block["round_ms"], dtype=np.float64)


def number(x: Json) -> float | None:
    """A JSON number as it is (an int stays an int), or None."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def group_json(g: Group) -> dict[str, object]:
    """A group as ``report.json`` has it: its keys in order, each variant's line as JSON."""
    return {k: [r.as_json() for r in g.get("rows", [])] if k == "rows" else v for k, v in g.items()}


def render(groups: dict[str, Group], *, model: str, spec: InputSpec, batch: int, seconds: float,
           bench: BenchSetup) -> str:
    b = batch

    def ci(x: list[float] | None) -> str:
        return "-" if not x else f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"

    size = f"{spec['seq_len']} tokens" if spec["kind"] == "tokens" else f"{spec['shape'][-1]} px"
    passes = f"batch 1 and batch {batch}" if batch else "batch 1 only"
    parts = [f"Deployed latency, {model} at {size}, {bench.where} ({bench.threads} threads), {passes}, per runtime "
             f"and precision: one interleaved group each, {seconds:.0f} s; ratios of per-round medians with 95% "
             f"bootstrap intervals; lower is faster. `build s`: compile/export/session seconds (never in the "
             f"latency); `agree`: max |out - eager fp32| / max |eager fp32| on random inputs of the timed shape."]
    for label, g in groups.items():
        parts.append(f"### {label}")
        if "not_applicable" in g or "error" in g:
            parts.append(f"not-applicable: {g['not_applicable']}" if "not_applicable" in g else f"error: {g['error']}")
            continue
        table = [{"variant": r.variant, "b1 p50 ms": f"{r.p50_b1_ms:.2f}", "b1 / ln": ci(r.ratios.get("b1_vs_ln")),
                  "b1 / none": ci(r.ratios.get("b1_vs_none")),
                  **({f"b{b} ms": f"{r.median_batch_ms:.1f}", f"b{b} / ln": ci(r.ratios.get(f"b{b}_vs_ln")),
                      f"b{b} / none": ci(r.ratios.get(f"b{b}_vs_none"))} if b else {}),
                  "build s": "-" if r.build_s is None else f"{r.build_s:.1f}",
                  "agree": "-" if r.agreement is None else f"{r.agreement:.1e}",
                  "params M": "-" if r.params is None else f"{r.params / 1e6:.3f}"} for r in g["rows"]]
        host = g.get("host_state")
        busy = (host.get("others_cpu_fraction") if host else None) or 0.0
        flag = (f" ⚠ busy CPU: other processes used {100 * busy:.0f}% of the machine's CPU time while this group "
                "was timed; its latencies may be inflated") if bench.device.type == "cpu" and busy > 0.2 else ""
        parts.append(f"{g['rounds']} rounds{flag}\n\n" + tabulate(table, headers="keys", tablefmt="github",
                                                                  disable_numparse=True))
        parts += [f"- `{v}`: **error**: {why}" for v, why in g.get("failed", {}).items()]
    matrix = deploy_matrix(groups)
    if matrix:
        parts += ["### Matrix: batch-1 latency / ln", matrix]
    return "\n\n".join(parts) + "\n"


def deploy_matrix(groups: dict[str, Group]) -> str:
    """Variants as rows, (runtime, precision) as columns, the batch-1 ratio to ``ln`` in each cell."""
    measured = {k: g for k, g in groups.items() if "rows" in g}
    if len(measured) < 2:
        return ""
    variants = list(dict.fromkeys(r.variant for g in measured.values() for r in g["rows"]))
    lines = []
    for v in variants:
        line = {"variant": v}
        for label, g in groups.items():
            row = next((r for r in g.get("rows", []) if r.variant == v), None)
            if row is not None and row.ratios.get("b1_vs_ln"):
                x = row.ratios["b1_vs_ln"]
                line[label] = f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"
            else:
                line[label] = "n/a" if "not_applicable" in g else "error"
        lines.append(line)
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True)
