"""Tables generated from the rows: ``table.csv`` (one line per cell) and ``leaderboard.md``.

Never edited by hand. One leaderboard section per (task, profile, device, data); the
baseline ``ln`` first; quality as mean +- std over seeds with the arrow of better; the
latency ratio to ``ln`` pooled over seeds from the paired per-round medians, with its 95%
interval; energy per inference (NVML, GPU) where some row of the section measured it. The data
(embedded or real) is named in every section and every line.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from suite.env import now_iso
from suite.measure.gpu import state_flag, state_warnings
from suite.measure.interleave import ratio_ci
from suite.report.matrix import deployment_matrices, machine, pooled_ratio
from suite.report.plots import curve_plots, matrix_heatmaps, pareto_plots
from suite.report.quality import paired_difference
from suite.report.rows import METRIC_LABEL, Row, baseline_of, latest_rows

ARROW = {"higher": "↑", "lower": "↓"}
RAW_COLUMNS = ("samples_ms", "round_ms", "loss_curve", "log_ratios", "window_mj")
#: a leaderboard section: task, profile, machine, data, runtime, precision, configuration group
SectionKey = tuple[str, str, str, str, str, str, str]


def write_reports(rows: Sequence[Mapping[str, object]], out_dir: Path,
                  extra_links: list[tuple[str, str]] | None = None) -> str:
    """table.csv, leaderboard.md and its plots (Pareto PNGs; trend PNGs passed in ``extra_links``)."""
    rows = latest_rows(rows)
    out_dir = Path(out_dir)
    flat_table(rows).to_csv(out_dir / "table.csv", index=False)
    links = pareto_plots(rows, out_dir) + curve_plots(rows, out_dir) + matrix_heatmaps(rows, out_dir) + \
        list(extra_links or [])
    md = leaderboard_markdown(rows)
    if links:
        md += "\n## Plots\n\n" + "\n".join(f"- [{title}]({name})" for title, name in links) + "\n"
    (out_dir / "leaderboard.md").write_text(md)
    return md


def flat_table(rows: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """One line per row, every field a column (nested ones dotted), without the raw per-round series."""
    if not rows:
        return pd.DataFrame()
    df = pd.json_normalize(rows)
    return df[[c for c in df.columns if not any(raw in c for raw in RAW_COLUMNS)]]


@dataclass
class Section:
    """One leaderboard section: the rows of one (task, profile, machine, data, runtime, precision,
    configuration) with its table lines (column header -> text shown), its preamble and its footnotes.
    ``leaderboard.md`` and the published site both render these."""
    task: str
    profile: str
    where: str
    data: str
    runtime: str
    precision: str
    group: str
    title: str
    rows: list[Row]
    lines: list[dict[str, str]]
    preamble: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


LEGEND = ("Arrows point to better. Latency: deployed model, batch 1, eval mode; ratio to `ln` is paired "
          "per interleaved round, pooled over seeds, with a 95% bootstrap interval. Quality: mean ± std over "
          "seeds; the primary metric's difference to `ln` is paired by seed with a 95% t interval, and the "
          "verdict is `better`/`worse` only when that interval excludes 0 (one seed: no verdict).")


def leaderboard_sections(rows: Sequence[Mapping[str, object]], newest: bool = True) -> list[Section]:
    """The rows in sections, in the order they were recorded; ``newest``: only the newest row of each
    cell (``False``: the caller chose the rows, e.g. one cell measured on two machines)."""
    grouped: dict[SectionKey, list[Row]] = {}
    for r in map(Row, latest_rows(rows) if newest else rows):
        grouped.setdefault(_section_key(r), []).append(r)
    groups_per_section: dict[tuple[str, ...], int] = {}
    for key in grouped:
        groups_per_section[key[:-1]] = groups_per_section.get(key[:-1], 0) + 1
    out = []
    for key, views in grouped.items():
        task, profile, where, data, runtime, precision, group = key
        split = groups_per_section[key[:-1]] > 1
        config = f" · config {group or 'unrecorded'}: {_config_label(views)}" if split else ""
        preamble = []
        if split:
            preamble.append(f"⚠ This task was run with {groups_per_section[key[:-1]]} different configurations; each "
                            "has its own section, and rows of different configurations are never ranked or paired "
                            "together.")
        if (runtime, precision) != ("eager", "fp32"):
            preamble.append(f"Quality: the deployed model evaluated in {precision} with eager PyTorch (Δ: against "
                            f"fp32); `agree`: max |{runtime} {precision} - eager fp32| / max |eager fp32| on real eval "
                            f"inputs; `build s`: compile/export seconds, never in the latency.")
        notes = [f"`{r.variant}` seed {r.seed}: **{r.status}**: {r.message}".rstrip(": ") for r in views if not r.ok]
        notes += [f"⚠ `{r.variant}` seed {r.seed}: measured {' and '.join(state_warnings(r.gpu_state))}; "
                  "its latency may be inflated" for r in views if state_warnings(r.gpu_state)]
        notes += [f"⚠ `{r.variant}` seed {r.seed}: {host_warning(r)}; its latency may be inflated"
                  for r in views if r.ok and host_warning(r)]
        notes += schedule_notes(views) + one_seed_note(views) + training_note(views) + tf32_note(views, precision)
        notes += energy_notes(views)
        title = f"{task} · profile {profile} · {where} · {runtime} {precision} · data: {data}{config}"
        out.append(Section(task, profile, where, data, runtime, precision, group, title, views,
                           section_lines(views), preamble, notes))
    return out


def leaderboard_markdown(rows: Sequence[Mapping[str, object]]) -> str:
    rows = latest_rows(rows)
    parts = ["# normbench leaderboard", "",
             f"Generated from `rows.jsonl` ({len(rows)} cells) at {now_iso()}; do not edit by hand.", LEGEND, ""]
    for sec in leaderboard_sections(rows):
        parts += [f"## {sec.title}", ""]
        for line in sec.preamble:
            parts += [line, ""]
        parts += [tabulate(sec.lines, headers="keys", tablefmt="github", disable_numparse=True), ""]
        parts += [f"- {n}" for n in sec.notes] + ([""] if sec.notes else [])
    parts += deployment_matrices(rows)
    return "\n".join(parts)


def one_seed_note(views: list[Row]) -> list[str]:
    """Why a section carries no verdicts: every variant ran one seed."""
    seeds = {r.seed for r in views if r.ok}
    if len(seeds) != 1:
        return []
    return ["One seed: the differences to `ln` get no interval and no verdict, so this table does not rank the "
            "variants' quality. Run more seeds for verdicts (`--seeds 0,1,2`; each seed costs one more run of "
            "this section)."]


ENERGY_COLUMN = "mJ/inf ↓ [95% CI]"


def energy_notes(views: list[Row]) -> list[str]:
    """What the energy column is (when the section has one), and the windows the energy pass discarded."""
    if not any(r.energy_mj is not None for r in views):
        return []
    notes = ["`mJ/inf`: whole-board GPU energy (NVML's total energy counter, idle draw included) per batch-1 "
             "inference, from windows of back-to-back calls of each variant alone after the timed rounds; 95% "
             "bootstrap interval over the windows, pooled over seeds. `unsupported`/`invalid`: no figure "
             "(reason in the row's `energy`)."]
    for r in views:
        e = r.energy
        if e and e.get("flagged"):
            notes.append(f"⚠ `{r.variant}` seed {r.seed}: {e['flagged']} energy window(s) discarded "
                         f"({'; '.join(e.get('flags') or [])})")
    return notes


def tf32_note(views: list[Row], precision: str) -> list[str]:
    """What "fp32" meant on CUDA: PyTorch lets cuDNN convolutions use TF32 by default (recorded per row)."""
    states = [r.tf32 for r in views if r.tf32]
    if precision != "fp32" or not states:
        return []
    conv, matmul = any(s.get("cudnn_conv") for s in states), any(s.get("matmul") for s in states)
    if not (conv or matmul):
        return ["fp32 on CUDA: TF32 was off for convolutions and matmuls (full fp32 arithmetic)."]
    used = " and ".join(w for w, on in (("cuDNN convolutions (the patch embedding)", conv), ("matmuls", matmul)) if on)
    return [f"fp32 on CUDA: {used} ran in TF32 (10-bit mantissa), PyTorch's default; the rest in full fp32."]


def training_note(views: list[Row]) -> list[str]:
    """How the cells trained, when some trained side by side (``--jobs``): their step times and their
    numerics (CPU kernels round by thread count) are those of that many threads."""
    how = sorted({r.training for r in views if r.ok and r.training[0] > 1})
    return [f"Trained {c} cells at once with {n} thread(s) each (`--jobs {c}`); timing and memory ran alone."
            for c, n in how]


def schedule_notes(views: list[Row]) -> list[str]:
    """One footnote per variant that ran with budget-tied keywords other than the published ones."""
    notes = {}
    for r in views:
        sched = r.schedule
        if sched and sched.get("scaled") and r.variant not in notes:
            used = ", ".join(f"{k}={v}" for k, v in sched["used"].items())
            ref = ", ".join(f"{k}={v}" for k, v in sched["reference"].items())
            notes[r.variant] = (f"`{r.variant}` ran with {used} (published: {ref}): a schedule set for this run's "
                                f"budget by the suite's rule or --set, not the paper's; see docs/methods.md")
    return list(notes.values())


#: other processes using more than this share of the machine's CPU time during timing flag a row
BUSY_CPU_FRACTION = 0.2


def host_warning(r: Row) -> str:
    """'' or why the row's CPU timing may be unfair: other processes kept the machine busy."""
    frac = r.others_cpu_fraction
    if frac is None or frac <= BUSY_CPU_FRACTION:
        return ""
    return f"measured while other processes used {100 * frac:.0f}% of the machine's CPU time"


def _section_key(r: Row) -> SectionKey:
    return (r.task, r.profile, machine(r), r.dataset_label, r.runtime, r.precision, r.config_group or "")


def _config_label(views: list[Row]) -> str:
    """Steps and batch of a section's recipe: what usually tells two configurations apart."""
    recipe = next((r.recipe for r in views if r.recipe), {})
    return f"{recipe.get('steps', '?')} steps, batch {recipe.get('batch_size', '?')}"


def section_lines(views: list[Row]) -> list[dict[str, str]]:
    """A section's table: one line per variant, the baseline first, with the verdict of the primary metric."""
    order = list(dict.fromkeys(r.variant for r in views))
    base = baseline_of(views)
    order.sort(key=lambda v: v != base)  # baseline first, the rest as recorded
    better: dict[str, str] = {}
    for r in views:
        better.update(r.metric_better)
    unit = next((r.throughput_unit for r in views if r.throughput_unit), "items/s")
    primary = next((r.primary_metric for r in views if r.primary_metric), None)
    energy = any(r.energy_mj is not None for r in views)
    lines = [_line(v, [r for r in views if r.variant == v], better, base, unit, energy) for v in order]
    if primary in better:
        base_q = _by_seed([r for r in views if r.variant == base], primary)
        for v, line in zip(order, lines):
            _add_verdict(line, v == base, _by_seed([r for r in views if r.variant == v], primary), base_q,
                         better[primary], f"Δ {METRIC_LABEL.get(primary, primary)} vs {base} [95% CI]")
    return lines


def _by_seed(rows: list[Row], metric: str) -> dict[int, float]:
    return {r.seed: r.quality[metric] for r in rows if r.ok and metric in r.quality}


def _add_verdict(line: dict[str, str], is_base: bool, q: dict[int, float], base_q: dict[int, float], better: str,
                 header: str) -> None:
    """The seed-paired difference of the primary metric to the baseline, and its verdict word."""
    if is_base:
        line[header], line["verdict"] = "-", "baseline"
        return
    d = paired_difference(q, base_q, better)
    line[header], line["verdict"] = d.show(), d.verdict


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def _line(variant: str, vrows: list[Row], better: dict[str, str], base: str, unit: str,
          energy: bool = False) -> dict[str, str]:
    """One variant's line of a section table: column header -> the text shown (the columns depend on
    the section's metrics, runtimes and measurements, so a line is a plain mapping)."""
    ok = [r for r in vrows if r.ok]
    line: dict[str, str] = {"variant": variant}
    statuses = sorted({r.status for r in vrows})
    flags = sorted(({state_flag(r.gpu_state) for r in ok} | {"busy CPU" for r in ok if host_warning(r)}) - {""})
    line["status"] = "/".join(statuses) + "".join(f" ⚠ {f}" for f in flags)
    for m, direction in better.items():
        vals = [r.quality[m] for r in ok if m in r.quality]
        line[f"{METRIC_LABEL.get(m, m)} {ARROW[direction]}"] = _mean_std(vals)
    if any(r.precision != "fp32" for r in vrows):
        primary = next((r.primary_metric for r in ok if r.primary_metric), None)
        deltas = [r.quality_delta[primary] for r in ok if primary in r.quality_delta]
        label = METRIC_LABEL.get(primary or "", primary or "")
        line[f"Δ {label}"] = _fmt(float(np.mean(deltas)) if deltas else None, 2)
    if any(r.runtime != "eager" or r.precision != "fp32" for r in vrows):
        agree = [a for a in (r.agreement for r in ok) if a is not None]
        line["agree"] = f"{max(agree):.1e}" if agree else "-"
        line["build s"] = _fmt(_median([r.build_s for r in ok]), 1)
    line["p50 ms ↓"] = _fmt(_median([r.latency_p50 for r in ok]), 3)
    line[f"ratio to {base} ↓ [95% CI]"] = _ratio(ok, base)
    if energy:  # a column only where some row of the section has a figure
        line[ENERGY_COLUMN] = _energy(ok)
    line[f"{unit} ↑"] = _fmt(_median([r.throughput for r in ok]), 1)
    if any(r.has_generation for r in vrows):
        line["gen ms/tok ↓"] = _fmt(_median([r.gen_ms_per_token for r in ok]), 2)
    line["peak MB ↓"] = _fmt(_median([r.peak_mb for r in ok]), 1)
    sized = next((r for r in vrows if r.params is not None), None)
    line["params M"] = _fmt(sized.params / 1e6 if sized and sized.params is not None else None, 3)
    line["GFLOPs"] = _fmt(sized.flops / 1e9 if sized and sized.flops is not None else None, 4)
    errs = [e for e in (r.deploy_rel_err for r in ok) if e is not None]
    line["deploy err"] = f"{max(errs):.1e}" if errs else "-"
    line["seeds"] = str(len(vrows))
    line["data"] = "/".join(sorted({r.dataset_kind for r in vrows}))
    return line


def _ratio(ok: list[Row], base: str) -> str:
    ci = pooled_ratio(ok, base)
    return "-" if ci is None else f"{ci.value:.3f} [{ci.lo:.3f}, {ci.hi:.3f}]"


def _energy(ok: list[Row]) -> str:
    """mJ per batch-1 inference pooled over seeds from the windows (the helper of the latency ratio),
    or why there is none: ``unsupported``, ``invalid``, ``-`` (not recorded)."""
    windows = [x for r in ok for x in r.energy_windows if x > 0]
    if windows:
        ci = ratio_ci(np.log(windows))
        lo_hi = f" [{_energy_fmt(ci.lo)}, {_energy_fmt(ci.hi)}]" if math.isfinite(ci.lo) else ""
        return _energy_fmt(ci.value) + lo_hi
    statuses = sorted({str(e.get("status")) for r in ok if (e := r.energy)} - {"ok"})
    return "/".join(statuses) or "-"


def _energy_fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def _mean_std(vals: list[float]) -> str:
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}"


def _fmt(x: float | None, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"
