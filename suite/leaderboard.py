"""Tables generated from the rows: ``table.csv`` (one line per cell) and ``leaderboard.md``.

Never edited by hand. One leaderboard section per (task, profile, device, data); the
baseline ``ln`` first; quality as mean +- std over seeds with the arrow of better; the
latency ratio to ``ln`` pooled over seeds from the paired per-round medians, with its 95%
interval. The data (embedded or real) is named in every section and every line.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from suite.env import now_iso
from suite.gpu import state_flag, state_warnings
from suite.measure import ratio_ci

ARROW = {"higher": "↑", "lower": "↓"}
METRIC_LABEL = {"top1": "top-1 %", "top5": "top-5 %", "eval_loss": "eval loss", "map": "box mAP",
                "ap50": "AP50", "ppl": "perplexity", "bpb": "bits/byte"}
RAW_COLUMNS = ("samples_ms", "round_ms", "loss_curve", "log_ratios")


def latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row recorded for each cell key (the store is append-only)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        latest[r["key"]] = r
    return list(latest.values())


def write_reports(rows: list[dict[str, Any]], out_dir: Path,
                  extra_links: list[tuple[str, str]] | None = None) -> str:
    """table.csv, leaderboard.md and its plots (Pareto PNGs; trend PNGs passed in ``extra_links``)."""
    from suite.plots import pareto_plots
    rows = latest_rows(rows)
    out_dir = Path(out_dir)
    flat_table(rows).to_csv(out_dir / "table.csv", index=False)
    links = pareto_plots(rows, out_dir) + list(extra_links or [])
    md = leaderboard_markdown(rows)
    if links:
        md += "\n## Plots\n\n" + "\n".join(f"- [{title}]({name})" for title, name in links) + "\n"
    (out_dir / "leaderboard.md").write_text(md)
    return md


def flat_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame()
    df = pd.json_normalize(rows)
    return df[[c for c in df.columns if not any(raw in c for raw in RAW_COLUMNS)]]


def leaderboard_markdown(rows: list[dict[str, Any]]) -> str:
    rows = latest_rows(rows)
    parts = ["# normbench leaderboard", "",
             f"Generated from `rows.jsonl` ({len(rows)} cells) at {now_iso()}; do not edit by hand.",
             "Arrows point to better. Latency: deployed model, batch 1, eval mode; ratio to `ln` is paired "
             "per interleaved round, pooled over seeds, with a 95% bootstrap interval.", ""]
    sections: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        sections.setdefault(_section_key(r), []).append(r)
    for key, section in sections.items():
        parts += [f"## {key[0]} · profile {key[1]} · {key[2]} · data: {key[3]}", "", _section_table(section), ""]
        notes = [f"- `{r['variant']}` seed {r['seed']}: **{r['status']}**: {r.get('message') or ''}".rstrip(": ")
                 for r in section if r.get("status") != "ok"]
        notes += [f"- ⚠ `{r['variant']}` seed {r['seed']}: measured {' and '.join(state_warnings(r.get('gpu_state')))}; "
                  "its latency may be inflated" for r in section if state_warnings(r.get("gpu_state"))]
        notes += [f"- ⚠ `{r['variant']}` seed {r['seed']}: {host_warning(r)}; its latency may be inflated"
                  for r in section if r.get("status") == "ok" and host_warning(r)]
        parts += notes + ([""] if notes else [])
    return "\n".join(parts)


#: other processes using more than this share of the machine's CPU time during timing flag a row
BUSY_CPU_FRACTION = 0.2


def host_warning(r: dict[str, Any]) -> str:
    """'' or why the row's CPU timing may be unfair: other processes kept the machine busy."""
    frac = (r.get("host_state") or {}).get("others_cpu_fraction")
    if frac is None or frac <= BUSY_CPU_FRACTION:
        return ""
    return f"measured while other processes used {100 * frac:.0f}% of the machine's CPU time"


def _section_key(r: dict[str, Any]) -> tuple[str, str, str, str]:
    dev = ((r.get("provenance") or {}).get("device") or {})
    if r.get("device") == "cuda":
        where = f"GPU: {dev.get('name', '?')} (driver {dev.get('driver', '?')})"
    else:
        where = f"CPU: {dev.get('cpu', '?')}, {dev.get('torch_threads', '?')} threads"
    return r["task"], r["profile"], where, (r.get("dataset") or {}).get("label", "?")


def _section_table(rows: list[dict[str, Any]]) -> str:
    order: list[str] = []
    for r in rows:
        if r["variant"] not in order:
            order.append(r["variant"])
    baselines = {((r.get("latency") or {}).get("ratio") or {}).get("baseline") for r in rows} - {None, ""}
    base = "ln" if "ln" in order else (sorted(baselines)[0] if baselines else order[0])
    order.sort(key=lambda v: v != base)  # baseline first, the rest as recorded
    better = {}
    for r in rows:
        better.update(r.get("metric_better") or {})
    unit = next((r["throughput"]["unit"] for r in rows if r.get("throughput")), "items/s")
    lines = [_line(v, [r for r in rows if r["variant"] == v], better, base, unit) for v in order]
    return tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True)


def _line(variant: str, vrows: list[dict], better: dict[str, str], base: str, unit: str) -> dict:
    ok = [r for r in vrows if r.get("status") == "ok"]
    line: dict[str, str] = {"variant": variant}
    statuses = sorted({r.get("status", "?") for r in vrows})
    flags = sorted(({state_flag(r.get("gpu_state")) for r in ok} | {"busy CPU" for r in ok if host_warning(r)}) - {""})
    line["status"] = "/".join(statuses) + "".join(f" ⚠ {f}" for f in flags)
    for m, direction in better.items():
        vals = [r["quality"][m] for r in vrows if r.get("status") == "ok" and m in (r.get("quality") or {})]
        line[f"{METRIC_LABEL.get(m, m)} {ARROW[direction]}"] = _mean_std(vals)
    lat = [r["latency"]["p50_ms"] for r in ok if r.get("latency")]
    line["p50 ms ↓"] = _fmt(np.median(lat) if lat else None, 3)
    line[f"ratio to {base} ↓ [95% CI]"] = _ratio(ok, base)
    thr = [r["throughput"]["value"] for r in ok if r.get("throughput")]
    line[f"{unit} ↑"] = _fmt(np.median(thr) if thr else None, 1)
    if any(r.get("generation") for r in vrows):
        gen = [r["generation"]["ms_per_token"] for r in ok if r.get("generation")]
        line["gen ms/tok ↓"] = _fmt(np.median(gen) if gen else None, 2)
    mem = [r["memory"]["peak_mb"] for r in ok if (r.get("memory") or {}).get("peak_mb") is not None]
    line["peak MB ↓"] = _fmt(np.median(mem) if mem else None, 1)
    model = next((r["model"] for r in vrows if r.get("model") and "params" in r["model"]), None)
    line["params M"] = _fmt(model["params"] / 1e6 if model else None, 3)
    line["GFLOPs"] = _fmt(model["flops"] / 1e9 if model else None, 4)
    errs = [r["deploy"]["rel_err"] for r in ok if r.get("deploy")]
    line["deploy err"] = f"{max(errs):.1e}" if errs else "-"
    line["seeds"] = str(len(vrows))
    line["data"] = "/".join(sorted({(r.get("dataset") or {}).get("kind", "?") for r in vrows}))
    return line


def _ratio(ok: list[dict], base: str) -> str:
    logs: list[float] = []
    for r in ok:
        ratio = (r.get("latency") or {}).get("ratio") or {}
        if ratio.get("baseline") == base:
            logs += ratio.get("log_ratios") or []
    if not logs:
        return "-"
    ci = ratio_ci(logs, baseline=base)
    return f"{ci.value:.3f} [{ci.lo:.3f}, {ci.hi:.3f}]"


def _mean_std(vals: list[float]) -> str:
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}"


def _fmt(x: float | None, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"
