"""``run_suite.py gpu-check`` (``make gpu-check``): the whole GPU validation in one command.

Steps, each in its own process so that one failing step does not stop the others:

1. the ``gpu``-marked tests (CUDA-event timing, NVML memory and state);
2. a smoke sweep on the device under every runtime and precision (``--runtime
   eager,compile,onnxruntime,cudagraphs --precision fp32,bf16,fp16``);
3. ``deploy-bench`` at real model sizes (DeiT-Tiny/Small 224, Swin-T 224, GPT-2 small at 1024
   tokens) under the runtimes in fp32 and bf16;
4. ``scaling`` (softmax vs SLA);

everything written under ``results/reference/<name>-<device>/`` with ``summary.md`` (each step's
command, exit status and time, and the batch-1 ratios of ``un``, ``prepbn`` and ``crms`` to ``ln``
per runtime and precision on DeiT-Tiny). It needs only a Python that has torch, timm,
transformers and the suite's other dependencies: nothing is installed. ``--quick`` shrinks
every step (a tiny deploy-bench model, a short sweep) so the plumbing can be checked anywhere,
CPU included; the tests do that.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import jsonio
from suite.env import REPO_ROOT, now_iso

RUNTIMES = "eager,compile,onnxruntime,cudagraphs"
REAL_MODELS = (("deit_tiny_patch16_224", []), ("deit_small_patch16_224", []), ("swin_tiny_patch4_window7_224", []),
               ("gpt2-small", ["--seq-len", "1024"]))
FOCUS = ("un", "prepbn", "crms")


@dataclass
class Step:
    name: str
    argv: list[str]
    seconds: float = 0.0
    code: int | None = None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_label(device: str) -> str:
    import torch
    if device == "cuda":
        return slug(torch.cuda.get_device_name(0).replace("NVIDIA", ""))
    return "cpu"


def plan(out: Path, device: str, quick: bool, variants: str) -> list[Step]:
    py, suite = sys.executable, str(REPO_ROOT / "run_suite.py")
    tasks = "imagenet,coco,wikitext" if importlib.util.find_spec("pycocotools") else "imagenet,wikitext"
    precisions = "fp32,bf16,fp16"
    sweep = [py, suite, "--device", device, "--variants", variants, "--tasks", tasks, "--runtime", RUNTIMES,
             "--precision", precisions, "--out", str(out / "smoke")]
    if quick:
        sweep += ["--max-steps", "6", "--timing-seconds", "0.4", "--tasks", "imagenet"]
    steps = [Step("gpu tests", [py, "-m", "pytest", "-q", "-m", "gpu", str(REPO_ROOT / "tests")]),
             Step("smoke sweep", sweep)]
    models = (("vit_tiny_patch16_224", ["--img-size", "32"]),) if quick else REAL_MODELS
    for model, extra in models:
        steps.append(Step(f"deploy-bench {model}", [
            py, suite, "deploy-bench", "--device", device, "--model", model, *extra,
            "--variants", variants + ",none,dyt", "--runtime", RUNTIMES, "--precision", "fp32,bf16",
            "--seconds", "3" if quick else "40", "--out", str(out / f"deploy-bench-{slug(model)}")]))
    steps.append(Step("scaling", [py, suite, "scaling", "--device", device, "--out", str(out / "scaling")]
                      + (["--tokens", "196,784", "--dims", "192", "--seconds", "1"] if quick else [])))
    return steps


def run_gpu_check(*, name: str, device: str, quick: bool, variants: str, results_dir: Path,
                  out: Path | None = None) -> int:
    out = out or results_dir / "reference" / f"{name}-{device_label(device)}"
    out.mkdir(parents=True, exist_ok=True)
    steps = plan(out, device, quick, variants)
    for step in steps:
        print(f"gpu-check: {step.name}: {' '.join(step.argv[1:])}", flush=True)
        t0 = time.perf_counter()
        with open(out / f"{slug(step.name)}.log", "w") as log:
            step.code = subprocess.run(step.argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        step.seconds = time.perf_counter() - t0
        print(f"gpu-check: {step.name}: exit {step.code} after {step.seconds:.0f} s", flush=True)
    summary = render_summary(out, steps, device)
    (out / "summary.md").write_text(summary)
    jsonio.write_atomic(out / "steps.json", {"recorded_at": now_iso(), "device": device, "quick": quick,
                                             "steps": [vars(s) for s in steps]})
    print(summary)
    return 0 if all(s.code == 0 for s in steps) else 1


def render_summary(out: Path, steps: list[Step], device: str) -> str:
    lines = [f"# gpu-check on {device_label(device)} ({now_iso()})", "",
             "| step | exit | seconds | command |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.code} | {s.seconds:.0f} | `{' '.join(s.argv[1:])}` |" for s in steps]
    bench = next(iter(sorted(out.glob("deploy-bench-*/report.json"))), None)
    focus = focus_table(jsonio.read(bench)) if bench else None
    if focus:
        lines += ["", f"## Batch-1 latency / ln of {', '.join(FOCUS)} per runtime and precision "
                  f"({bench.parent.name})", "", focus]
    return "\n".join(lines) + "\n"


def focus_table(report: dict[str, Any]) -> str:
    """Rows: the focus variants; columns: each measured (runtime, precision); cells: ratio [CI]."""
    from tabulate import tabulate
    groups = report.get("groups", {})
    lines = []
    for v in FOCUS:
        line = {"variant": v}
        for label, g in groups.items():
            row = next((r for r in g.get("rows", []) if r["variant"] == v), None)
            x = (row or {}).get("b1_vs_ln")
            line[label] = f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]" if x else ("n/a" if "not_applicable" in g else "-")
        lines.append(line)
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True)
