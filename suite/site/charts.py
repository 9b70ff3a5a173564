"""The history chart of one cell: a panel per judged metric over the nights, in the order recorded.

Drawn with matplotlib (object API, no pyplot) as SVG. The line is the variant's colour; a red
triangle marks a night the nightly called a regression of that metric, a green one an improvement;
a dashed line marks the night a step change began, labelled with its commit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from suite.report.colours import variant_colour
from suite.site.history import CellHistory, metric_unit

MARK = {"regressed": ("v", "#d62728"), "improved": ("^", "#2ca02c")}


def history_chart(cell: CellHistory, path: Path) -> Path:
    metrics = list(cell.values)
    n = max(1, len(metrics))
    fig = Figure(figsize=(8.0, 1.2 + 1.6 * n), dpi=100)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(cell.nights))
    colour = variant_colour(cell.row.variant)
    for ax, metric in zip(axes, metrics):
        y = np.array([np.nan if v is None else v for v in cell.values[metric]], dtype=np.float64)
        ax.plot(x, y, lw=1.0, marker="." if len(x) <= 60 else None, color=colour)
        for verdict, (marker, mc) in MARK.items():
            idx = [cell.nights.index(c.night) for c in cell.calls
                   if c.verdict.metric == metric and c.verdict.verdict == verdict]
            if idx:
                ax.scatter(idx, y[idx], marker=marker, s=60, color=mc, zorder=4, label=verdict)
        for s in cell.steps.get(metric, []):
            i = cell.nights.index(s.night)
            ax.axvline(i, color=MARK.get(s.verdict, ("", "0.4"))[1], ls="--", lw=0.9)
            ax.annotate(f"step {s.change} at {(s.commit or 'unrecorded')[:8]}", (i, 1.0),
                        xycoords=("data", "axes fraction"), fontsize=7, va="top", ha="left", rotation=0)
        ax.set_ylabel(metric_unit(cell, metric), fontsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left")
    axes[-1].set_xlabel(f"night (oldest → newest, {len(cell.nights)} nights in the order recorded)")
    axes[0].set_title(cell.label, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path

