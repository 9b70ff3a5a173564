"""``run_suite.py gpu-check`` (``make gpu-check``): the GPU validation, sized for a short lease.

A GPU machine is often lent for minutes. So the check is a list of steps in order of value,
run one after another under one wall-clock budget (``--budget`` seconds):

1. an environment report (nvidia-smi, every installed package, the suite's dependencies that
   are missing or at another version, and what is skipped because of them);
2. the ``gpu``-marked tests;
3. ``deploy-bench`` at real sizes (DeiT-Tiny and DeiT-Small at 224 px, GPT-2 small at 1024
   tokens): eager first for every model, then compile and CUDA graphs (batch-1 latency, compile
   caches warmed side by side), for ``ln,none,un,prepbn,crms,dyt`` in fp32 and bf16;
4. a short sweep of ``imagenet`` and ``wikitext`` with two variants on the device;
5. the rest while time remains (Swin-T, ONNX Runtime and fp16, ``coco``, attention scaling).

A step starts only when the time left covers its minimum; one still running at the deadline is
stopped with its whole process group, and what it wrote so far stays (deploy-bench writes its
report after every timing group, a sweep its rows as they come). Every step's status is written
to ``steps.json`` as it ends. Run again on the same ``--out`` (a second call on a machine still
warm), steps that finished are not repeated and a stopped sweep resumes. Every timing row
carries its energy per inference (NVML's counter; ``unsupported`` with the reason where there is
none) and the summary tables it per deploy-bench model. The check ends with a bundle of two files
for the device tool's return limits (at most 8 files): ``summary.md`` and one ``.tar.gz`` of
every report, row file and log (model weights left out).

Wheels of packages the GPU image lacks (``make wheelhouse``: jsonschema, pycocotools and
their dependencies, for CPython 3.12) are installed from ``--wheelhouse`` with ``--no-index``
into the results folder and put on every step's ``PYTHONPATH``. The parent process holds no
CUDA context: device facts come from NVML.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from suite import jsonio
from suite.env import REPO_ROOT, now_iso, visible_gpus

BENCH_VARIANTS = "ln,none,un,prepbn,crms,dyt"
SWEEP_VARIANTS = "ln,prepbn"
FOCUS = ("un", "prepbn", "crms")
#: (model, its deploy-bench arguments), in the order their results are worth having
REAL_MODELS: tuple[tuple[str, list[str]], ...] = (
    ("deit_tiny_patch16_224", []), ("gpt2-small", ["--seq-len", "1024"]), ("deit_small_patch16_224", []))
#: seconds kept back at the end for the summary and the bundle
RESERVE_S = 15.0
BUNDLE_LIMIT = 15 * 2**20  # the device tool returns files of at most 16 MiB
#: what the suite does without an optional dependency, for the environment report
WITHOUT = {
    "jsonschema": "row-schema tests skip and rows written by the tests are not validated",
    "pycocotools": "the coco task is left out of the sweeps (its mAP is pycocotools')",
    "PyYAML": "the workflow tests skip",
    "onnxruntime": "the onnxruntime runtime gives not-applicable rows",
}
STATUSES = ("ok", "failed", "stopped at the budget", "skipped: budget", "skipped", "done earlier")


class StepRecord(TypedDict):
    """A step as ``steps.json`` keeps it: ``Step``'s fields, in their order."""
    name: str
    argv: list[str]
    min_s: float
    folder: str | None
    status: str
    code: int | None
    seconds: float
    note: str


class StepsFile(TypedDict):
    """``steps.json``: every planned step's status, rewritten as each one ends."""
    recorded_at: str
    device: str
    gpu: str
    budget_s: float
    steps: list[StepRecord]


class Dependency(TypedDict):
    """One of the suite's dependencies in the environment report: pinned and installed versions."""
    name: str
    pinned: str
    installed: str | None
    state: str                  # ok, other version, missing
    without: str                # what the suite skips without it (missing only)


class EnvironmentReport(TypedDict):
    """``environment.json``: the machine and software the check ran on."""
    recorded_at: str
    python: str
    executable: str
    platform: str
    cpu: str
    cpu_count: int | None
    gpu: Mapping[str, object]   # ``suite.measure.gpu.device_info``; empty on a CPU check
    nvidia_smi: str
    nvidia_smi_query: str
    dependencies: list[Dependency]
    wheels_installed: list[str]
    onnxruntime_cuda_provider: bool | None
    packages: dict[str, str]


@dataclass
class Step:
    name: str
    argv: list[str]             # a command, or [] for a step run in this process (the environment report)
    min_s: float                # started only when at least this much time is left
    folder: str | None = None   # its results folder under the check's --out, cleared before a fresh start
    status: str = "pending"
    code: int | None = None
    seconds: float = 0.0
    note: str = ""

    def record(self) -> StepRecord:
        return {"name": self.name, "argv": list(self.argv), "min_s": self.min_s, "folder": self.folder,
                "status": self.status, "code": self.code, "seconds": self.seconds, "note": self.note}


@dataclass
class Check:
    """One gpu-check: where it writes, its budget, and the steps it plans."""

    out: Path
    device: str
    budget_s: float
    seconds: float = 8.0        # deploy-bench timing per (runtime, precision) group
    build_jobs: int = 6
    bench_variants: str = BENCH_VARIANTS
    sweep_variants: str = SWEEP_VARIANTS
    started: float = field(default_factory=time.monotonic)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_label(device: str) -> str:
    if device == "cuda":  # through NVML: this process must hold no CUDA context while its steps time the GPU
        from suite.measure.gpu import device_info
        return slug(device_info(0)["name"].replace("NVIDIA", ""))
    return "cpu"


def plan(check: Check) -> list[Step]:
    """Every step, in order of value."""
    py, suite, out, dev = sys.executable, str(REPO_ROOT / "run_suite.py"), check.out, check.device

    def bench(model: str, extra: list[str], runtimes: str, precisions: str, tag: str, *more: str,
              min_s: float = 40) -> Step:
        folder = f"deploy-bench-{slug(model)}-{tag}"
        return Step(f"deploy-bench {model} {runtimes} {precisions}",
                    [py, suite, "deploy-bench", "--device", dev, "--model", model, *extra, "--variants",
                     check.bench_variants, "--runtime", runtimes, "--precision", precisions, "--seconds",
                     f"{check.seconds:g}", *more, "--out", str(out / folder)], min_s, folder)

    def sweep(name: str, tasks: str, runtimes: str, precisions: str, min_s: float, *more: str) -> Step:
        folder = slug(name)
        return Step(name, [py, suite, "--device", dev, "--variants", check.sweep_variants, "--tasks", tasks,
                           "--runtime", runtimes, "--precision", precisions, *more, "--out", str(out / folder)],
                    min_s, folder)

    compiled = ("--batch", "0", "--build-jobs", str(check.build_jobs))  # batch-1 latency: one compiled shape
    steps = [Step("environment", [], 0),
             Step("gpu tests", [py, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p", "no:cacheprovider",
                                str(REPO_ROOT / "tests")], 30)]
    steps += [bench(m, extra, "eager", "fp32,bf16", "eager") for m, extra in REAL_MODELS]
    steps += [bench(m, extra, "compile,cudagraphs", "fp32,bf16", "compiled", *compiled, min_s=90)
              for m, extra in REAL_MODELS]
    steps.append(sweep("sweep", "imagenet,wikitext", "eager,cudagraphs", "fp32,bf16", 60))
    gpus = visible_gpus() if dev == "cuda" else 0
    if gpus >= 2:  # the GPU pool: cells of two groups side by side, each group timed alone on one GPU
        steps.append(sweep("sweep gpu pool", "imagenet,wikitext", "eager", "fp32", 60, "--seeds", "0,1",
                           "--gpus", ",".join(map(str, range(gpus)))))
    steps.append(bench("swin_tiny_patch4_window7_224", [], "eager,compile,cudagraphs", "fp32,bf16", "all",
                       "--build-jobs", str(check.build_jobs), min_s=90))
    steps.append(bench("deit_tiny_patch16_224", [], "eager,onnxruntime", "fp32,fp16", "ort-fp16"))
    if importlib.util.find_spec("pycocotools"):
        steps.append(sweep("sweep coco", "coco", "eager", "fp32,bf16", 60))
    steps.append(Step("scaling", [py, suite, "scaling", "--device", dev, "--out", str(out / "scaling")], 60,
                      "scaling"))
    return steps


def run_gpu_check(*, name: str, device: str, budget_s: float, results_dir: Path, out: Path | None = None,
                  bundle_dir: Path | None = None, wheelhouse: Path | None = None, seconds: float = 8.0,
                  build_jobs: int = 6) -> int:
    """Run the plan under the budget; write ``summary.md`` and the bundle; 0 when every step that
    ran passed (a step left out for the budget is not a failure, and the summary names it)."""
    label = device_label(device)
    out = out or results_dir / "gpu-check" / f"{name}-{label}"
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out=out, device=device, budget_s=budget_s, seconds=seconds, build_jobs=build_jobs)
    installed = install_wheels(wheelhouse, out / "site", check.env)
    steps = plan(check)
    earlier = previous_steps(out)
    for step in steps:
        run_step(check, step, earlier, installed)
        save_steps(check, steps, label)
    summary = render_summary(check, steps, label)
    jsonio.write_text_atomic(out / "summary.md", summary)
    archive = write_bundle(out, bundle_dir or out / "bundle", label, summary)
    print(summary)
    print(f"gpu-check: bundle {archive} and {archive.parent / 'summary.md'}", flush=True)
    return 1 if any(s.status == "failed" for s in steps) else 0


def run_step(check: Check, step: Step, earlier: Mapping[str, Mapping[str, object]], installed: list[str]) -> None:
    before = earlier.get(step.name)
    if before and before.get("status") == "ok" and before.get("argv") == step.argv and step.argv:
        seconds = before.get("seconds")
        step.status, step.code, step.note = "done earlier", 0, "finished in an earlier call on this folder"
        step.seconds = seconds if isinstance(seconds, (int, float)) else 0.0
        return
    usable = check.left() - RESERVE_S
    if usable < step.min_s:
        step.status, step.note = "skipped: budget", f"{max(usable, 0):.0f} s left, needs {step.min_s:.0f} s"
        return
    t0 = time.monotonic()
    if not step.argv:
        environment_report(check, installed)
        step.status, step.code = "ok", 0
    else:
        run_command(check, step)
    step.seconds = time.monotonic() - t0
    print(f"gpu-check: {step.name}: {step.status} after {step.seconds:.0f} s", flush=True)


def run_command(check: Check, step: Step) -> None:
    """The step's command in a process group of its own, stopped with all its workers at the deadline."""
    argv = list(step.argv)
    if step.folder:
        folder = check.out / step.folder
        if (folder / "run.json").exists():  # a sweep stopped earlier: complete it
            argv.append("--resume")
        elif folder.exists():  # a deploy-bench or scaling stopped earlier: start it again clean
            shutil.rmtree(folder)
    print(f"gpu-check: {step.name}: {' '.join(argv[1:])}", flush=True)
    with open(check.out / f"{slug(step.name)}.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=check.env,
                                start_new_session=True)
        try:
            step.code = proc.wait(timeout=max(1.0, check.left() - RESERVE_S))
            step.status = "ok" if step.code == 0 else "failed"
        except subprocess.TimeoutExpired:
            stop_group(proc)
            step.status, step.code = "stopped at the budget", None
            step.note = "what it finished before the deadline is kept"
        with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing it left behind runs on
            os.killpg(proc.pid, signal.SIGKILL)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the step's whole process group (its workers too), SIGKILL after a grace period."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def previous_steps(out: Path) -> dict[str, Mapping[str, object]]:
    """The steps an earlier call on this folder recorded, by name (read back: checked where used)."""
    path = out / "steps.json"
    if not path.exists():
        return {}
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return {s["name"]: s for s in jsonio.read(path)["steps"]}
    return {}


def save_steps(check: Check, steps: list[Step], label: str) -> None:
    doc: StepsFile = {"recorded_at": now_iso(), "device": check.device, "gpu": label, "budget_s": check.budget_s,
                      "steps": [s.record() for s in steps]}
    jsonio.write_atomic(check.out / "steps.json", doc)


# -- wheels and the environment -------------------------------------------------------------
def install_wheels(wheelhouse: Path | None, target: Path, env: dict[str, str]) -> list[str]:
    """Install the wheelhouse's wheels (no index, no dependency resolution) into ``target`` and put
    it first on this process's path and every step's ``PYTHONPATH``; the wheel files installed."""
    wheels = sorted((wheelhouse or REPO_ROOT / ".whl").glob("*.whl"))
    if not wheels:
        return []
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(target), *map(str, wheels)], check=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    return [w.name for w in wheels]


def dependencies() -> list[tuple[str, str]]:
    """(name, pinned version) of the suite's run and test dependencies (pyproject.toml)."""
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["test"]
    return [tuple(r.split("==", 1)) if "==" in r else (r, "") for r in reqs]


def dependency_status() -> list[Dependency]:
    out: list[Dependency] = []
    for name, pin in dependencies():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        state = "missing" if have is None else ("ok" if have == pin or not pin else "other version")
        out.append({"name": name, "pinned": pin, "installed": have, "state": state,
                    "without": WITHOUT.get(name, "") if have is None else ""})
    return out


def environment_report(check: Check, installed: list[str]) -> EnvironmentReport:
    """``environment.md`` and ``environment.json``: the GPU as nvidia-smi and NVML see it, Python,
    every installed distribution, the suite's dependencies, the wheels installed for this check."""
    smi = _command(["nvidia-smi"]) if check.device == "cuda" else "(CPU check: no nvidia-smi)"
    query = _command(["nvidia-smi", "--query-gpu=name,uuid,driver_version,memory.total,clocks.max.sm,power.limit,"
                      "persistence_mode,compute_mode", "--format=csv"]) if check.device == "cuda" else ""
    from suite.measure.env import cpu_name
    gpu: Mapping[str, object] = {}
    if check.device == "cuda":
        from suite.measure.gpu import device_info
        gpu = device_info(0)
    deps = dependency_status()
    packages = sorted({(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()},
                      key=lambda x: x[0].lower())
    onnx_cuda = _ort_cuda()
    report: EnvironmentReport = {
        "recorded_at": now_iso(), "python": platform.python_version(), "executable": sys.executable,
        "platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpu": gpu,
        "nvidia_smi": smi, "nvidia_smi_query": query, "dependencies": deps, "wheels_installed": installed,
        "onnxruntime_cuda_provider": onnx_cuda, "packages": dict(packages)}
    jsonio.write_atomic(check.out / "environment.json", report)
    jsonio.write_text_atomic(check.out / "environment.md", render_environment(report))
    return report


def _ort_cuda() -> bool | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _command(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({argv[0]} could not run: {type(e).__name__}: {e})"
    return (proc.stdout + proc.stderr).strip()


def skipped_for_missing(report: EnvironmentReport) -> list[str]:
    """One line per missing dependency (and the CPU-only ONNX Runtime on a GPU): what was skipped."""
    lines = [f"`{d['name']}` missing: {d['without'] or 'tests or steps that import it fail'}"
             for d in report["dependencies"] if d["state"] == "missing"]
    if report.get("gpu") and report.get("onnxruntime_cuda_provider") is False:
        lines.append("onnxruntime has no CUDA provider here (a CPU build): its GPU rows are not-applicable")
    return lines


def render_environment(report: EnvironmentReport) -> str:
    from tabulate import tabulate
    deps = [{"package": d["name"], "pinned": d["pinned"], "installed": d["installed"] or "-", "state": d["state"]}
            for d in report["dependencies"]]
    lines = [f"# Environment ({report['recorded_at']})", "",
             f"Python {report['python']} ({report['executable']}), {report['platform']}, CPU {report['cpu']} "
             f"({report['cpu_count']} cores).", ""]
    if report["gpu"]:
        lines += ["GPU (NVML): " + ", ".join(f"{k} {v}" for k, v in report["gpu"].items()), ""]
    lines += ["## The suite's dependencies", "", tabulate(deps, headers="keys", tablefmt="github"), ""]
    lines += [f"- {line}" for line in skipped_for_missing(report)] + [""]
    if report["wheels_installed"]:
        lines += ["Installed from the wheelhouse for this check: " + ", ".join(report["wheels_installed"]), ""]
    lines += ["## nvidia-smi", "", "```", report["nvidia_smi"], report["nvidia_smi_query"], "```", "",
              "## Every installed distribution", "",
              ", ".join(f"{n} {v}" for n, v in report["packages"].items()), ""]
    return "\n".join(lines)


# -- summary and bundle ---------------------------------------------------------------------
def render_summary(check: Check, steps: list[Step], label: str) -> str:
    used = time.monotonic() - check.started
    what = "GPU" if check.device == "cuda" else "CPU (the same script, no GPU)"
    lines = [f"# gpu-check on {label}: {what}, {now_iso()}", "",
             f"Budget {check.budget_s:.0f} s, used {used:.0f} s. Steps in order of value; a step starts only when "
             f"the time left covers its minimum.", "",
             "| step | status | seconds | note |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status}{'' if s.code in (None, 0) else f' (exit {s.code})'} | {s.seconds:.0f} | "
              f"{s.note} |" for s in steps]
    left_out = [s.name for s in steps if s.status.startswith("skipped") or s.status == "stopped at the budget"]
    lines += ["", "Not run for the budget, or stopped at it: " + (", ".join(left_out) if left_out else "none") + "."]
    env = check.out / "environment.json"
    if env.exists():
        missing = skipped_for_missing(jsonio.read(env))
        lines += ["", "Missing here and what it skipped: " + ("; ".join(missing) if missing else "nothing") + "."]
    tests = check.out / "gpu-tests.log"
    if tests.exists() and tests.read_text().strip():
        lines += ["", f"gpu tests: {tests.read_text().strip().splitlines()[-1].strip('= ')}"]
    for model, table in focus_tables(check.out).items():
        lines += ["", f"## Batch-1 latency / ln of {', '.join(FOCUS)}: {model}", "", table]
    lines += energy_summary(check.out)
    lines += ["", "Commands and logs: `steps.json` and `*.log` in the bundle; reports in its `deploy-bench-*/`, "
                  "`sweep*/` and `scaling/` folders."]
    return "\n".join(lines) + "\n"


def focus_tables(out: Path) -> dict[str, str]:
    """Per deploy-bench model: rows the focus variants, columns every measured (runtime, precision)."""
    from tabulate import tabulate
    merged: dict[str, dict[str, Mapping[str, object]]] = {}
    for report in sorted(out.glob("deploy-bench-*/report.json")):
        data = jsonio.read(report)
        merged.setdefault(data["args"]["model"], {}).update(data.get("groups", {}))
    tables = {}
    for model, groups in merged.items():
        lines = []
        for v in FOCUS:
            line = {"variant": v}
            for group_label, g in groups.items():
                line[group_label] = focus_cell(g, v)
            lines.append(line)
        tables[model] = tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True)
    return tables


def focus_cell(group: Mapping[str, object], variant: str) -> str:
    """A deploy-bench group's batch-1 ratio to ``ln`` of ``variant`` (its ``report.json`` form):
    ``value [lo, hi]``, ``n/a`` for a group not applicable here, ``-`` where it was not measured."""
    rows = group.get("rows")
    row = next((r for r in rows if isinstance(r, dict) and r.get("variant") == variant), None) \
        if isinstance(rows, list) else None
    x = row.get("b1_vs_ln") if row else None
    if isinstance(x, list) and x:
        return f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"
    return "n/a" if "not_applicable" in group else "-"


def energy_summary(out: Path) -> list[str]:
    """The summary's energy part, from every row the steps wrote (``*/rows.jsonl``): how many rows have
    a figure, why the others have none, and per deploy-bench model a table of ``ln`` and the focus
    variants' mJ per batch-1 inference (``value [lo, hi]``) in every measured (runtime, precision)."""
    from tabulate import tabulate

    from suite.report.rows import Row
    from suite.report.store import read_rows
    rows = [(f.parent.name, Row(r)) for f in sorted(out.glob("*/rows.jsonl")) for r in read_rows(f)]
    said = [(folder, r, e) for folder, r in rows if (e := r.energy) is not None]
    if not said:
        return []
    ok = [x for x in said if x[2]["status"] == "ok"]
    reasons = sorted({f"{e['status']}: {e.get('reason', '?')}" for _, _, e in said if e["status"] != "ok"})
    lines = ["", f"Energy per inference (NVML total energy counter): a figure in {len(ok)} of {len(said)} rows"
             + (f"; the others {'; '.join(reasons)}" if reasons else "") + "."]
    tables: dict[str, dict[str, dict[str, str]]] = {}   # model -> variant -> group -> cell
    for folder, r, e in said:
        if not folder.startswith("deploy-bench-") or r.variant not in ("ln", *FOCUS):
            continue
        cell = tables.setdefault(r.task.removeprefix("deploy-bench:"), {}).setdefault(r.variant, {})
        cell[f"{r.runtime} {r.precision}"] = energy_cell(e)
    for model, by_variant in tables.items():
        groups = list(dict.fromkeys(g for cells in by_variant.values() for g in cells))
        table = [{"variant": v, **{g: by_variant[v].get(g, "-") for g in groups}}
                 for v in ("ln", *FOCUS) if v in by_variant]
        lines += ["", f"## Energy per batch-1 inference (mJ, whole board, idle included): {model}", "",
                  tabulate(table, headers="keys", tablefmt="github", disable_numparse=True)]
    return lines


def energy_cell(e: Mapping[str, object]) -> str:
    """A row's energy as the summary shows it: ``value [lo, hi]``, or its status."""
    value, lo, hi = e.get("mj_per_inference"), e.get("lo"), e.get("hi")
    if e.get("status") != "ok" or not isinstance(value, (int, float)):
        return str(e.get("status", "-"))
    interval = f" [{lo:.4g}, {hi:.4g}]" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else ""
    return f"{value:.4g}{interval}"


#: never bundled: model weights and inputs, installed wheels, the bundle itself
LEAVE_OUT = ("*.pt", "site", "bundle", "models", ".lock", "*.tmp")


def write_bundle(out: Path, bundle_dir: Path, label: str, summary: str) -> Path:
    """``summary.md`` and ``gpu-check-<label>.tar.gz`` (reports, rows, logs, environment) in
    ``bundle_dir``; the largest files are left out (and listed in it) if the archive would pass
    the device tool's 16 MiB."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in out.rglob("*") if p.is_file() and not _left_out(p.relative_to(out)))
    archive = bundle_dir / f"gpu-check-{label}.tar.gz"
    dropped: list[str] = []
    while True:
        with tarfile.open(archive, "w:gz") as tar:
            for f in files:
                tar.add(f, arcname=f"gpu-check-{label}/{f.relative_to(out)}")
            if dropped:
                data = json.dumps({"left_out_for_size": dropped}, indent=1).encode()
                info = tarfile.TarInfo(f"gpu-check-{label}/left-out.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if archive.stat().st_size <= BUNDLE_LIMIT or not files:
            break
        largest = max(files, key=lambda p: p.stat().st_size)
        files.remove(largest)
        dropped.append(str(largest.relative_to(out)))
    jsonio.write_text_atomic(bundle_dir / "summary.md", summary + (
        f"\nLeft out of the archive for its size: {', '.join(dropped)}\n" if dropped else ""))
    return archive


def _left_out(rel: Path) -> bool:
    return any(part.startswith(".") or any(Path(part).match(p) for p in LEAVE_OUT) for part in rel.parts)
