#!/usr/bin/env python3
"""Why ``prepbn`` trails ``ln`` on the smoke ``coco`` task: a budget study plus eval-mode diagnostics.

Two parts, both resumable:

1. Sweeps (``run_suite.py``, one folder per setting under ``--out``): the share of the run that
   ``total_steps`` takes (16% = the suite's rule, 40%, 80%, 100%), pure ``repbn`` (no LayerNorm
   phase at all) and a doubled batch (``--batch-size 16``, with its own ``ln``). The table is
   ``scripts/budget_study.py``'s summary (mean ± std over seeds, seed-paired difference to ``ln``).
2. Diagnostics (``--diagnose``; trains in this process, one model at a time): the same cells as the
   sweep's ``scaled-suite`` retrained, then box mAP of one trained model under several evaluations
   (the suite's recalibrated running statistics; the running statistics training left; each eval
   batch's own statistics; the suite's form on training images), and how much a batch's BN
   statistics move from batch to batch at every token BatchNorm (``coco`` batch 8 against
   ``imagenet`` batch 64). Written to ``diagnostics/diagnostics.json``.

    python scripts/coco_prepbn_study.py [--out results/reference/budget-sensitivity-coco] [--seeds 0,1]
                                        [--diagnose] [--summarize-only]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from budget_study import summarize  # noqa: E402  (the table and the figure of the budget study)

#: setting -> (what it is, variants trained, extra run_suite options)
SETTINGS: dict[str, tuple[str, str, list[str]]] = {
    "scaled-suite": ("the vision rule, coco's before this study: prepbn total_steps 16% of the run (48 of 300 "
                     "steps), batch 8", "ln,prepbn", ["--set", "prepbn.total_steps=16%"]),
    "fraction-40": ("prepbn total_steps 40% of the run", "prepbn", ["--set", "prepbn.total_steps=40%"]),
    "fraction-80": ("prepbn total_steps 80%", "prepbn", ["--set", "prepbn.total_steps=80%"]),
    "fraction-100": ("prepbn total_steps 100% (the LayerNorm weight reaches 0 at the last step)", "prepbn",
                     ["--set", "prepbn.total_steps=100%"]),
    "repbn": ("`repbn`: RepBN from the first step, no LayerNorm phase", "repbn", []),
    "batch-16": ("batch 16 instead of 8 (`--batch-size 16`, same steps and learning rate; `ln` retrained "
                 "at batch 16 and paired with it), prepbn 16%", "ln,prepbn",
                 ["--batch-size", "16", "--set", "prepbn.total_steps=16%"]),
}


def run(out: Path, seeds: str, only: list[str] | None) -> None:
    for name, (_, variants, extra) in SETTINGS.items():
        if only and name not in only:
            continue
        folder = out / name
        argv = [sys.executable, str(ROOT / "run_suite.py"), "--variants", variants, "--tasks", "coco",
                "--seeds", seeds, "--timing-seconds", "0.5", "--jobs", "1", "--out", str(folder), *extra]
        if (folder / "run.json").exists():
            argv += ["--resume"]
        print(f"coco study: {name}: {' '.join(argv[2:])}", flush=True)
        subprocess.run(argv, cwd=ROOT, check=False)


# ---------------------------------------------------------------- diagnostics (in this process)

#: a short run to check the diagnostics code (``--diag-max-steps``); None: the profile's steps
MAX_STEPS: int | None = None


def train_in_process(task_name: str, variant_name: str, seed: int, sets: dict[str, object] | None = None) -> tuple:
    """Train one cell as ``suite.sweep.cell.run_cell`` does (same seed, batches, recipe); returns
    (task, model) before the variant's ``after_training`` hook."""
    import torch

    from suite.models.artifact import build
    from suite.sweep.cell import seed_everything
    from suite.sweep.identity import variant_kwargs
    from suite.sweep.train import train
    from suite.task import TASKS
    from suite.variants import parse_variant
    from suite.variants.base import TrainingContext, before_training
    task = TASKS.get(task_name)()
    profile = task.profile("smoke", None, max_steps=MAX_STEPS)
    task.open(None, profile)
    variant = parse_variant(variant_name)
    vkw = variant_kwargs(task, variant, profile, sets or {})
    args = task.model_args(variant, vkw)
    seed_everything(seed)
    model = build(args)
    before_training(variant.norm_cls, model, TrainingContext(steps=profile.recipe.steps, family=task.family))
    t0 = time.perf_counter()
    stats = train(model, task, torch.device("cpu"), seed, desc=f"{task_name}/{variant_name}/s{seed}", show=False)
    print(f"  trained {task_name}/{variant_name}/s{seed} {vkw} in {time.perf_counter() - t0:.0f} s, "
          f"final loss {stats.final_loss:.3f}", flush=True)
    return task, model, stats


def token_bns(model: Any) -> list[tuple[str, Any]]:
    from suite.variants.tokenbn import TokenBatchNorm
    return [(n, m) for n, m in model.named_modules() if isinstance(m, TokenBatchNorm)]


@contextlib.contextmanager
def batch_statistics(model: Any) -> Iterator[None]:
    """Every token BatchNorm normalizes with the statistics of the batch it sees (as in training),
    running statistics untouched (momentum 0), while the rest of the model stays in eval mode."""
    bns = token_bns(model)
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for _, m in bns]
    hooks = [m.register_forward_pre_hook(lambda mod, _: setattr(mod, "training", True)) for _, m in bns]
    for _, m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        for (_, m), (momentum, state) in zip(bns, saved):
            m.momentum = momentum
            m.load_state_dict(state)
            m.eval()


@contextlib.contextmanager
def on_training_images(task: Any, n: int) -> Iterator[None]:
    """``task.evaluate`` scores the first ``n`` training images instead of the validation split."""
    data = task.data
    val = data.val
    data.val = data.train
    try:
        yield
    finally:
        data.val = val


def evaluate(task: Any, model: Any, limit: int | None = None) -> float:
    import torch
    return round(float(task.evaluate(model.eval(), torch.device("cpu"), limit=limit)[task.primary_metric]), 2)


def recalibrate(task: Any, model: Any, seed: int) -> None:
    """The suite's ``after_training`` (prepbn: 100 training batches, cumulative averages)."""
    from suite.variants.norms.prepbn import recalibrate as recal
    recal(model, task.train_batches(seed), lambda batch: task.forward(model, batch))


def snapshot_running(model: Any) -> dict[str, Any]:
    return {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in token_bns(model)}


def restore_running(model: Any, snap: dict[str, Any]) -> None:
    for n, m in token_bns(model):
        m.load_state_dict(snap[n])


def batch_noise(task: Any, model: Any, seed: int, batches: int = 24) -> dict[str, float]:
    """At the input of every token BatchNorm (the trained model in eval mode, training batches):
    ``shift``: the batch-to-batch std of a channel's batch mean in units of its feature std,
    ``scale``: the batch-to-batch relative std of a channel's batch std, and ``between_images``:
    the share of a channel's variance that is between the per-image means; channel means, then
    the mean over layers (and the first and last layer)."""
    import torch
    bns = token_bns(model)
    seen: dict[str, list[torch.Tensor]] = {n: [] for n, _ in bns}
    hooks = [m.register_forward_pre_hook(lambda mod, inp, n=n: seen[n].append(inp[0].detach().clone()))
             for n, m in bns]
    model.eval()
    it = task.train_batches(seed + 1000)
    try:
        with torch.inference_mode():
            for _ in range(batches):
                task.forward(model, next(it))
    finally:
        for h in hooks:
            h.remove()
    per_layer = []
    for n, _ in bns:
        xs = seen[n]  # each [B, N, C]
        means = torch.stack([x.reshape(-1, x.shape[-1]).mean(0) for x in xs])        # [batches, C]
        stds = torch.stack([x.reshape(-1, x.shape[-1]).std(0) for x in xs])
        allx = torch.cat([x.reshape(-1, x.shape[-1]) for x in xs])
        total_var = allx.var(0)
        img_means = torch.cat([x.mean(1) for x in xs])                               # [images, C]
        per_layer.append({"shift": float((means.std(0) / total_var.sqrt()).mean()),
                          "scale": float((stds.std(0) / stds.mean(0)).mean()),
                          "between_images": float((img_means.var(0) / total_var).mean()),
                          "tokens_per_batch": int(xs[0].shape[0] * xs[0].shape[1])})
    keys = ("shift", "scale", "between_images")
    out: dict[str, float] = {f"{k}_mean": round(sum(p[k] for p in per_layer) / len(per_layer), 4) for k in keys}
    out |= {f"{k}_first": round(per_layer[0][k], 4) for k in keys}
    out |= {f"{k}_last": round(per_layer[-1][k], 4) for k in keys}
    out["tokens_per_batch"] = per_layer[0]["tokens_per_batch"]
    out["layers"] = len(per_layer)
    return out


def diagnose(out: Path, seeds: list[int]) -> dict[str, Any]:
    path = out / "diagnostics" / "diagnostics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    train_items = 90  # as many training images as the validation split has

    def save() -> None:
        path.write_text(json.dumps(doc, indent=1) + "\n")

    # prepbn first, then the imagenet reference, then ln: the most informative models first
    for seed in seeds:
        key = f"coco/prepbn/s{seed}"
        if key not in doc:
            task, model, stats = train_in_process("coco", "prepbn", seed)
            r: dict[str, Any] = {"final_loss": round(stats.final_loss, 4)}
            trained = snapshot_running(model)
            r["running_from_training"] = evaluate(task, model)
            with batch_statistics(model):
                r["batch_statistics"] = evaluate(task, model)
            recalibrate(task, model, seed)
            r["suite"] = evaluate(task, model)
            with on_training_images(task, train_items):
                r["train_images"] = evaluate(task, model, limit=train_items)
                with batch_statistics(model):
                    r["train_images_batch_statistics"] = evaluate(task, model, limit=train_items)
            r["noise"] = batch_noise(task, model, seed)
            restore_running(model, trained)
            r["eta"] = [round(float(m.repbn.eta), 3) for m in model.modules() if hasattr(m, "repbn")]
            doc[key] = r
            save()
    if "imagenet/prepbn/s0" not in doc:  # the same statistics where prepbn matches ln (batch 64 of digits)
        task, model, stats = train_in_process("imagenet", "prepbn", 0)
        recalibrate(task, model, 0)
        doc["imagenet/prepbn/s0"] = {"suite": evaluate(task, model), "final_loss": round(stats.final_loss, 4),
                                     "noise": batch_noise(task, model, 0)}
        save()
    for seed in seeds:
        key = f"coco/ln/s{seed}"
        if key not in doc:
            task, model, stats = train_in_process("coco", "ln", seed)
            doc[key] = {"suite": evaluate(task, model), "final_loss": round(stats.final_loss, 4)}
            with on_training_images(task, train_items):
                doc[key]["train_images"] = evaluate(task, model, limit=train_items)
            save()
    return doc


def diagnostics_table(doc: dict[str, Any]) -> str:
    import numpy as np
    from tabulate import tabulate
    if not doc:
        return ""

    def ms(vals: list[float]) -> str:
        if not vals:
            return "-"
        return f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"

    seeds = sorted({k.rsplit("/s", 1)[1] for k in doc if k.startswith("coco/prepbn/")})
    pre = [doc[f"coco/prepbn/s{s}"] for s in seeds]
    ln = [doc[f"coco/ln/s{s}"] for s in seeds if f"coco/ln/s{s}" in doc]
    rows = [
        {"evaluation": "the suite's: running statistics re-estimated on 100 training batches",
         "ln": ms([r["suite"] for r in ln]), "prepbn": ms([r["suite"] for r in pre])},
        {"evaluation": "running statistics as training left them (momentum 0.1, no re-estimate)",
         "ln": "-", "prepbn": ms([r["running_from_training"] for r in pre])},
        {"evaluation": "each eval batch's own statistics (16 images, as in training)",
         "ln": "-", "prepbn": ms([r["batch_statistics"] for r in pre])},
        {"evaluation": "the suite's, scored on 90 training images",
         "ln": ms([r["train_images"] for r in ln]), "prepbn": ms([r["train_images"] for r in pre])},
        {"evaluation": "batch statistics, scored on 90 training images",
         "ln": "-", "prepbn": ms([r["train_images_batch_statistics"] for r in pre])},
        {"evaluation": "final training loss",
         "ln": ms([r["final_loss"] for r in ln]), "prepbn": ms([r["final_loss"] for r in pre])},
    ]
    lines = ["## Diagnostics: one trained model, several evaluations (box mAP, mean ± std over seeds "
             f"{', '.join(seeds)})", "",
             tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True), ""]
    noise = [("coco", "8 images", [r["noise"] for r in pre])]
    if "imagenet/prepbn/s0" in doc:
        noise.append(("imagenet", "64 images", [doc["imagenet/prepbn/s0"]["noise"]]))
    nrows = []
    for task, batch, ns in noise:
        nrows.append({"task": task, "batch": batch, "tokens a batch": str(ns[0]["tokens_per_batch"]),
                      "mean shift / std (all layers)": ms([n["shift_mean"] for n in ns]),
                      "first / last layer": f"{np.mean([n['shift_first'] for n in ns]):.3f} / "
                                            f"{np.mean([n['shift_last'] for n in ns]):.3f}",
                      "std jitter (relative)": ms([n["scale_mean"] for n in ns]),
                      "variance between images": ms([n["between_images_mean"] for n in ns])})
    lines += ["Batch-to-batch movement of the BN statistics at the input of every token BatchNorm of the "
              "trained `prepbn` model (eval mode, 24 training batches): the std over batches of a channel's "
              "batch mean in units of the channel's std, the relative std over batches of its batch std, and "
              "the share of its variance that lies between the per-image means (channel means, then layer "
              "means). `imagenet`: seed 0 only.", "",
              tabulate(nrows, headers="keys", tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


def machine() -> str:
    return ("2-core AMD EPYC (Zen 3, AVX2), shared with another developer's processes during the runs; "
            "`--jobs 1` (one cell at a time, 2 threads)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "reference" / "budget-sensitivity-coco")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--settings", default="", help="comma list: run only these settings")
    p.add_argument("--diagnose", action="store_true", help="also run the in-process diagnostics")
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("--diag-max-steps", type=int, help="diagnostics only, a short run to check this script")
    args = p.parse_args()
    global MAX_STEPS
    MAX_STEPS = args.diag_max_steps
    only = [s for s in args.settings.split(",") if s]
    if not args.summarize_only:
        if args.diag_max_steps is None:
            run(args.out, args.seeds, only)
        if args.diagnose:
            diagnose(args.out, [int(s) for s in args.seeds.split(",")])
    table = summarize(args.out, SETTINGS, variants=("prepbn", "repbn"),
                      title="Why `prepbn` trails `ln` on the smoke `coco` task (FCOS, embedded shapes)",
                      figure="coco-prepbn.png")
    diag_path = args.out / "diagnostics" / "diagnostics.json"
    diag = diagnostics_table(json.loads(diag_path.read_text())) if diag_path.exists() else ""
    commands = []
    for name in SETTINGS:
        run_json = args.out / name / "run.json"
        if run_json.exists():
            argv = json.loads(run_json.read_text())["argv"]
            commands.append(f"python run_suite.py {' '.join(str(a).replace(str(ROOT) + '/', '') for a in argv[1:])}")
    extra = ["## Machine and commands", "",
             f"Machine: {machine()}. Every cell is the smoke `coco` profile (300 steps, batch 8 unless the "
             "setting says, lr 2e-3, 50 warm-up steps, grad clip 1.0, 96 px generated shapes: 360 training and "
             "90 validation images). Training is deterministic for this CPU and thread count, so the other "
             "load on the machine inflated the times (and the latency columns of the leaderboards), not "
             "the quality figures.", "",
             "The sweeps, as each folder's `run.json` records them (run through "
             "`python scripts/coco_prepbn_study.py --seeds S --settings NAME`):", "", "```", *commands, "```", "",
             "The diagnostics (in this process; `diagnostics/diagnostics.json`):", "", "```",
             "python scripts/coco_prepbn_study.py --seeds 0 --diagnose --settings none", "```", "",
             "The table again without training: `python scripts/coco_prepbn_study.py --summarize-only`.", ""]
    (args.out / "README.md").write_text(table + "\n" + diag + "\n" + "\n".join(extra))
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
