"""Plots next to ``leaderboard.md`` (PNG) and on the site (SVG): quality vs latency with the Pareto front,
learning curves, deployment matrices and trends; every variant in its own fixed colour.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed), so
a headless CI runner and a test process can draw without touching global state.
"""
from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure

from suite.parts import LearningCurve
from suite.report.colours import variant_colour
from suite.report.matrix import Cell, machine, matrix_cells
from suite.report.rows import METRIC_LABEL, Row, cell_label, latest_rows


class StepMark(Protocol):
    """A step change found in a trend (``suite.regression.history.Step``): the night and which way."""
    @property
    def night(self) -> str: ...
    @property
    def verdict(self) -> str: ...


class TrendSeries(Protocol):
    """One cell's values over the history's nights (``suite.regression.history.Trend``)."""
    @property
    def key(self) -> str: ...
    @property
    def nights(self) -> Sequence[str]: ...
    @property
    def values(self) -> Sequence[float]: ...
    @property
    def steps(self) -> Sequence[StepMark]: ...


def slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(str(p) for p in parts)).strip("-")


def pareto_front(points: list[tuple[float, float]], quality_higher: bool = True) -> list[int]:
    """Indices of the points no other point beats on both latency (lower) and quality.

    Sorted by latency; a point is on the front when it is better in quality than every
    faster point (ties in latency: the better quality one)."""
    sign = 1.0 if quality_higher else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if sign * points[i][1] > best:
            front.append(i)
            best = sign * points[i][1]
    return front


def _points(views: Iterable[Row], metric: str) -> dict[str, tuple[float, float]]:
    """Per variant: (median p50 latency over seeds, mean quality over seeds)."""
    by: dict[str, tuple[list[float], list[float]]] = {}
    for r in views:
        lat, q = r.latency_p50, r.quality.get(metric)
        if r.ok and lat and q is not None:
            by.setdefault(r.variant, ([], []))
            by[r.variant][0].append(lat)
            by[r.variant][1].append(q)
    return {v: (float(np.median(ls)), float(np.mean(qs))) for v, (ls, qs) in by.items()}


def pareto_plots(rows: Sequence[Mapping[str, object]], out_dir: Path, fmt: str = "png") -> list[tuple[str, str]]:
    """One figure per (task, profile, device, data); returns (title, file name) for the links. ``fmt``: the
    file type (png for leaderboard.md, svg for the site)."""
    groups: dict[tuple[str, str, str, str], list[Row]] = {}
    for r in map(Row, latest_rows(rows)):
        groups.setdefault((r.task, r.profile, r.device, r.dataset_kind), []).append(r)
    links = []
    for (task, profile, device, kind), views in groups.items():
        metric = next((r.primary_metric for r in views if r.primary_metric), None)
        pts = _points(views, metric) if metric else {}
        if not pts:
            continue
        assert metric is not None  # no metric, no points
        # the first row's directions: the rows of one group share their task's metrics
        higher = next((r.metric_better for r in views), {}).get(metric, "higher") == "higher"
        name = f"pareto-{slug(task, profile, device, kind)}.{fmt}"
        title = f"{task} · {profile} · {device} · {kind}: {METRIC_LABEL.get(metric, metric)} vs latency"
        _draw_pareto(pts, higher, metric, title, Path(out_dir) / name)
        links.append((title, name))
    return links


def _draw_pareto(pts: dict[str, tuple[float, float]], higher: bool, metric: str, title: str, path: Path) -> None:
    names = list(pts)
    xy = [pts[n] for n in names]
    front = pareto_front(xy, higher)
    fig = Figure(figsize=(6.4, 4.4), dpi=110)
    ax = fig.subplots()
    ax.scatter([p[0] for p in xy], [p[1] for p in xy], color=[variant_colour(n) for n in names], zorder=3)
    for n, (x, y) in zip(names, xy):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    fx = [xy[i][0] for i in front]
    fy = [xy[i][1] for i in front]
    ax.step(fx, fy, where="post", color="tab:red", lw=1.2, label="Pareto front", zorder=2)
    ax.scatter(fx, fy, facecolors="none", edgecolors="tab:red", s=90, zorder=4)
    ax.set_xlabel("batch-1 latency p50 (ms, deployed model) ← better")
    ax.set_ylabel(f"{METRIC_LABEL.get(metric, metric)} {'↑' if higher else '↓'} better")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def trend_plot(trends: Sequence[TrendSeries], metric: str, unit_label: str, path: Path) -> Path:
    """One line per cell over its nights; flagged step nights get a red ring."""
    fig = Figure(figsize=(7.5, 4.4), dpi=110)
    ax = fig.subplots()
    for t in trends:
        x = np.arange(len(t.values))
        ax.plot(x, t.values, marker=".", lw=1, label=cell_label(t.key))
        for s in t.steps:
            i = t.nights.index(s.night)
            ax.scatter([i], [t.values[i]], s=120, facecolors="none",
                       edgecolors="tab:red" if s.verdict == "regressed" else "tab:green", zorder=4)
    ax.set_xlabel("night (oldest → newest)")
    ax.set_ylabel(unit_label)
    ax.set_title(f"{metric} per cell over the history (rings: step changes)", fontsize=9)
    ax.grid(alpha=0.3)
    if trends:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    return path


def matrix_heatmaps(rows: Sequence[Mapping[str, object]], out_dir: Path, fmt: str = "png") -> list[tuple[str, str]]:
    """The deployment matrix of each task as a heat map: variants x (runtime, precision), the
    colour the log of the latency ratio to ``ln`` (blue faster, red slower), the ratio printed."""
    groups: dict[tuple[str, str, str, str, str], list[Row]] = {}
    for r in map(Row, latest_rows(rows)):
        groups.setdefault((r.task, r.profile, r.device, r.dataset_kind, machine(r)), []).append(r)
    links = []
    for (task, profile, device, kind, where), views in groups.items():
        columns = list(dict.fromkeys((r.runtime, r.precision) for r in views))
        if len(columns) < 2:
            continue
        cells = matrix_cells(views, columns)
        name = f"matrix-{slug(task, profile, device, kind)}.{fmt}"
        title = f"{task} · {profile} · {where} · {kind}: latency / ln per runtime and precision"
        _draw_matrix(cells, columns, title, Path(out_dir) / name)
        links.append((title, name))
    return links


def _draw_matrix(cells: dict[str, dict[tuple[str, str], Cell]], columns: list[tuple[str, str]], title: str,
                 path: Path) -> None:
    variants = list(cells)
    values = np.full((len(variants), len(columns)), np.nan)
    for i, v in enumerate(variants):
        for j, col in enumerate(columns):
            c = cells[v][col]
            if not isinstance(c, str) and c.value and np.isfinite(c.value):
                values[i, j] = np.log2(c.value)
    span = max(0.05, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.05)
    fig = Figure(figsize=(1.3 + 1.1 * len(columns), 1.2 + 0.45 * len(variants)), dpi=110)
    ax = fig.subplots()
    from matplotlib import colormaps
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")  # grey: not applicable or not built
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-span, vmax=span, aspect="auto")
    for i, v in enumerate(variants):
        for j, col in enumerate(columns):
            c = cells[v][col]
            dark = np.isfinite(values[i, j]) and abs(values[i, j]) > 0.6 * span
            ax.text(j, i, c if isinstance(c, str) else f"{c.value:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(columns)), [f"{r}\n{p}" for r, p in columns], fontsize=7)
    ax.set_yticks(range(len(variants)), variants, fontsize=8)
    ax.set_title(textwrap.fill(title, 60), fontsize=8)  # narrow figures: wrap rather than crop
    fig.colorbar(image, ax=ax, label="log2(latency / ln)")
    fig.tight_layout()
    fig.savefig(path)


def curve_plots(rows: Sequence[Mapping[str, object]], out_dir: Path, fmt: str = "png") -> list[tuple[str, str]]:
    """Learning curves per (task, profile, device, data): the eval metric on the fixed subset and the train
    loss against the step, one line per variant (mean over seeds) with a band of one standard deviation."""
    cells: dict[tuple[str, str, str, str, str], dict[tuple[str, int], LearningCurve]] = {}
    for r in map(Row, latest_rows(rows)):
        curve = r.curve
        if r.ok and curve and curve.get("values"):  # a trained cell's curve, once (its runtimes repeat it)
            cells.setdefault((r.task, r.profile, r.device, r.dataset_kind, machine(r)), {})[(r.variant, r.seed)] = curve
    links = []
    for (task, profile, device, kind, where), curves in cells.items():
        name = f"curves-{slug(task, profile, device, kind)}.{fmt}"
        metric = next(iter(curves.values()))["metric"]
        title = f"{task} · {profile} · {where} · {kind}: learning curves"
        _draw_curves(curves, metric, title, Path(out_dir) / name)
        links.append((title, name))
    return links


def _draw_curves(curves: dict[tuple[str, int], LearningCurve], metric: str, title: str, path: Path) -> None:
    fig = Figure(figsize=(10, 4.0), dpi=110)
    left, right = fig.subplots(1, 2)
    for variant in dict.fromkeys(v for v, _ in curves):
        mine = [c for (v, _), c in curves.items() if v == variant]
        steps = mine[0]["steps"]
        same = [c for c in mine if c["steps"] == steps]
        for ax, series in ((left, [c["values"] for c in same]), (right, [c["train_loss"] for c in same])):
            vals = np.array(series, dtype=np.float64)
            mean, sd = vals.mean(0), vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(vals.shape[1])
            colour = variant_colour(variant)
            ax.plot(steps, mean, marker=".", lw=1.2, color=colour,
                    label=f"{variant} ({len(same)} seed{'s' * (len(same) > 1)})")
            ax.fill_between(steps, mean - sd, mean + sd, alpha=0.2, color=colour)
    items = next(iter(curves.values())).get("eval_items")
    left.set_ylabel(f"{METRIC_LABEL.get(metric, metric)} on the first {items} eval items")
    right.set_ylabel("train loss (mean since the previous point)")
    for ax in (left, right):
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
