#!/usr/bin/env python3
"""The budget-sensitivity study of the variants whose schedules the suite scales (``un``, ``prepbn``).

The papers' schedules assume ~375k optimizer steps; a smoke cell has 400-1,000. This runs the
smoke tasks with 3 seeds under several settings of those schedules, each a fraction of the
cell's own steps (``--set KEY=N%``), and the unscaled reference values, then summarises quality
per (task, variant, setting) as mean +- std over seeds and the seed-paired difference to ``ln``
with its 95% interval, and plots it.

    python scripts/budget_study.py [--out results/reference/budget-sensitivity] [--seeds 0,1,2]
                                   [--tasks imagenet,wikitext] [--summarize-only]

Each setting is one sweep folder under ``--out`` (``ln`` is trained in the first only: the
other settings do not change it); re-running resumes whatever is missing.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: setting -> (what it is, the --set options); fractions are of each cell's own optimizer steps
SETTINGS = {
    "scaled-suite": ("the suite's rule: the reference schedule times steps/375,300 "
                     "(un warm-up 1.1%, ratio warm-up 0.27%; prepbn 16%)", []),
    "fraction-10-40": ("un warm-up and ratio warm-up 10% of the run; prepbn 40%",
                       ["un.warmup_iters=10%", "un.r_warmup=10%", "prepbn.total_steps=40%"]),
    "fraction-20-80": ("un 20%; prepbn 80%", ["un.warmup_iters=20%", "un.r_warmup=20%", "prepbn.total_steps=80%"]),
    "fraction-40-100": ("un 40%; prepbn 100%", ["un.warmup_iters=40%", "un.r_warmup=40%", "prepbn.total_steps=100%"]),
    "reference": ("the papers' values unscaled: un 4000 / 1000, prepbn 60000 (longer than any smoke run)",
                  ["un.warmup_iters=4000", "un.r_warmup=1000", "prepbn.total_steps=60000"]),
}


def run(out: Path, seeds: str, tasks: str) -> None:
    for i, (name, (_, sets)) in enumerate(SETTINGS.items()):
        folder = out / name
        variants = "ln,un,prepbn" if i == 0 else "un,prepbn"
        argv = [sys.executable, str(ROOT / "run_suite.py"), "--variants", variants, "--tasks", tasks,
                "--seeds", seeds, "--timing-seconds", "0.5", "--out", str(folder)]
        argv += [x for s in sets for x in ("--set", s)]
        if (folder / "run.json").exists():
            argv += ["--resume"]
        print(f"budget study: {name}: {' '.join(argv[2:])}", flush=True)
        subprocess.run(argv, cwd=ROOT, check=False)


def summarize(out: Path, settings: dict[str, tuple] | None = None, variants: tuple[str, ...] = ("un", "prepbn"),
              title: str = "Budget sensitivity of `un` and `prepbn` (smoke tasks, embedded data)",
              figure: str = "budget-sensitivity.png") -> str:
    """The README table of a study: one row per (task, variant, setting) and one per ``ln`` baseline.

    ``settings`` (name -> (what it is, ...)) defaults to this study's; a setting is paired with the
    ``ln`` of its own folder where it trained one (e.g. a setting that changes the batch), else with
    the ``ln`` of the first setting.
    """
    import numpy as np
    from tabulate import tabulate

    from suite.report.quality import paired_difference
    from suite.report.store import read_rows

    def ms(q: list[float]) -> str:  # one seed: no spread
        return f"{np.mean(q):.2f} ± {np.std(q, ddof=1):.2f}" if len(q) > 1 else f"{q[0]:.2f}"

    settings = SETTINGS if settings is None else settings
    rows = {name: [r for r in read_rows(out / name / "rows.jsonl") if r["status"] == "ok"]
            for name in settings if (out / name / "rows.jsonl").exists()}
    first = next(iter(settings))
    lines, points = [], []
    for task in sorted({r["task"] for rs in rows.values() for r in rs}):
        ln_of: dict[str, dict[int, float]] = {}
        metric = better = ""
        for name, rs in rows.items():
            ln = {r["seed"]: r for r in rs if r["task"] == task and r["variant"] == "ln"}
            if not ln:
                continue
            metric = next(iter(ln.values()))["primary_metric"]
            better = next(iter(ln.values()))["metric_better"][metric]
            ln_of[name] = {s: r["quality"][metric] for s, r in ln.items()}
            ln_vals = list(ln_of[name].values())
            lines.append({"task": task, "variant": "ln", "setting": "-" if name == first else name, "kwargs": "-",
                          metric: ms(ln_vals),
                          "Δ vs ln [95% CI]": "-", "verdict": "-", "seeds": str(len(ln_vals))})
        if first not in ln_of:
            continue
        for variant in variants:
            for name, rs in rows.items():
                mine = {r["seed"]: r for r in rs if r["task"] == task and r["variant"] == variant}
                if not mine:
                    continue
                ln_q = ln_of.get(name, ln_of[first])
                q = {s: r["quality"][metric] for s, r in mine.items()}
                d = paired_difference(q, ln_q, better)
                kw = next(iter(mine.values()))["model"]["variant_kwargs"]
                shown = {k: v for k, v in kw.items() if k in ("warmup_iters", "r_warmup", "total_steps",
                                                              "warmup_steps")}
                vals = list(q.values())
                lines.append({"task": task, "variant": variant, "setting": name,
                              "kwargs": ", ".join(f"{k}={v}" for k, v in shown.items()),
                              metric: ms(vals),
                              "Δ vs ln [95% CI]": d.show(), "verdict": d.verdict, "seeds": str(len(vals))})
                points.append((task, variant, name, float(np.mean(vals)), float(np.std(vals, ddof=1)),
                               float(np.mean(list(ln_q.values()))), metric, better))
    plot(points, out / figure, list(settings), variants)
    intro = [f"# {title}", "",
             "Each setting is a sweep folder here; quality is mean ± std over seeds; the difference to `ln` is "
             "paired by seed with a 95% t interval. Settings:", ""]
    intro += [f"- `{name}`: {spec[0]}" + ("" if name in rows else " (not run)") for name, spec in settings.items()]
    return "\n".join(intro + ["", tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True), "",
                              f"![quality per setting]({figure})", ""])


def plot(points: list[tuple], path: Path, names: list[str] | None = None,
         variants: tuple[str, ...] = ("un", "prepbn")) -> None:
    from matplotlib.figure import Figure
    tasks = sorted({p[0] for p in points})
    if not tasks:  # nothing finished yet
        return
    fig = Figure(figsize=(5.5 * len(tasks), 4.2), dpi=110)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    names = list(SETTINGS) if names is None else names
    for ax, task in zip(axes, tasks):
        mine = [p for p in points if p[0] == task]
        for k, variant in enumerate(variants):
            pts = sorted((names.index(p[2]), p[3], p[4]) for p in mine if p[1] == variant)
            if pts:
                x = [i + (k - 0.5) * 0.12 for i, _, _ in pts]
                ax.errorbar(x, [m for _, m, _ in pts], yerr=[s for _, _, s in pts], marker="o", capsize=3,
                            label=variant)
        ln = mine[0][5] if mine else None
        if ln is not None:
            ax.axhline(ln, color="k", lw=1, ls="--", label="ln (mean)")
        ax.set_xticks(range(len(names)), [n.replace("-", "\n", 1) for n in names], fontsize=7)
        metric, better = (mine[0][6], mine[0][7]) if mine else ("", "higher")
        ax.set_ylabel(f"{metric} ({'↑' if better == 'higher' else '↓'} better), mean ± std over seeds")
        ax.set_title(f"{task}: schedule setting vs quality", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "reference" / "budget-sensitivity")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--tasks", default="imagenet,wikitext")
    p.add_argument("--summarize-only", action="store_true")
    args = p.parse_args()
    if not args.summarize_only:
        run(args.out, args.seeds, args.tasks)
    (args.out / "README.md").write_text(summarize(args.out))
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
