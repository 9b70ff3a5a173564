"""What runs after a sweep or a merge: verdicts against a baseline, then the history append.

Used by the sweep (``--compare``, ``--history``) and by the ``merge``, ``compare`` and
``history`` subcommands. Order matters when the baseline is the history itself: the run
is judged against the history first, then appended to it, so it never judges itself.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tabulate import tabulate

from suite.errors import UsageError
from suite.regression.compare import WINDOW, Baseline, compare_rows, load_baseline, publish, regressed_cells
from suite.regression.history import append_night, cell_trends, history_file, read_history, to_frame
from suite.report.leaderboard import write_reports
from suite.report.plots import slug, trend_plot
from suite.report.rows import Row, cell_label, latest_rows

TREND_METRICS = ("latency", "ratio_to_ln", "memory")  # plus each task's primary quality metric


@dataclass(kw_only=True)
class NightlyOptions:
    compare: Path | None = None
    history: Path | None = None
    fail_on_regression: bool = False
    window: int = WINDOW
    baseline: Baseline | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.fail_on_regression and self.compare is None:
            raise UsageError("--fail-on-regression needs --compare BASELINE (a run folder or results/history)")
        if self.window < 1:
            raise UsageError(f"--window must be a positive number of nights, got {self.window}")
        if self.compare is not None and self._starts_history():
            print(f"normbench: no history at {history_file(self.compare)} yet: nothing to compare with; "
                  "this run starts it", file=sys.stderr)
        elif self.compare is not None:  # read now: a bad baseline must fail before hours of sweeping
            self.baseline = load_baseline(self.compare)

    def _starts_history(self) -> bool:
        """``--compare H --history H`` on the very first night: H does not exist yet."""
        return (self.history is not None and self.compare is not None
                and history_file(self.compare).resolve() == history_file(self.history).resolve()
                and not history_file(self.history).exists())


def finish(out: Path, rows: Sequence[Mapping[str, object]], opts: NightlyOptions) -> int:
    """Verdicts, then the history append and trend plots; returns 1 on a regression that fails the run."""
    rows, code = latest_rows(rows), 0
    if opts.baseline is not None:
        verdicts = compare_rows(rows, opts.baseline, opts.window)
        publish(verdicts, opts.baseline, out)
        bad = regressed_cells(verdicts)
        if bad:
            print(f"normbench: regressions against {opts.compare}: {', '.join(bad)}", file=sys.stderr)
            code = 1 if opts.fail_on_regression else 0
    if opts.history is not None and rows:
        night = append_night(opts.history, rows)
        print(f"history: night {night} appended to {history_file(opts.history)}", file=sys.stderr)
        write_reports(rows, out, extra_links=trend_links(opts.history, rows, out))
    return code


def trend_links(history: Path, rows: Sequence[Mapping[str, object]], out: Path) -> list[tuple[str, str]]:
    """Trend PNGs of this run's cells over the history, for the leaderboard to link."""
    frame, rules = to_frame(read_history(history))
    frame = frame[frame["key"].isin({Row(r).key for r in rows})]
    metrics = list(TREND_METRICS) + sorted({m for m in (Row(r).primary_metric for r in rows) if m})
    links = []
    for metric in [m for m in metrics if m in rules]:
        trends = cell_trends(frame, metric, rules[metric])
        name = f"trend-{slug(metric)}.png"
        trend_plot(trends, metric, metric, Path(out) / name)
        links.append((f"trend of {metric} over the history", name))
    return links


def history_report(history: Path, metric: str, *, task: str | None = None, variant: str | None = None,
                   nights: int = 8, recent: int = 7, plot_dir: Path | None = None) -> str:
    """A metric's recent values per cell with its step changes, as markdown (and a trend PNG)."""
    frame, rules = to_frame(read_history(history))
    if metric not in rules:
        raise UsageError(f"--metric {metric!r} is not in the history; use one of {', '.join(sorted(rules))}")
    for col, want in (("task", task), ("variant", variant)):
        if want:
            frame = frame[frame[col] == want]
    rule = rules[metric]
    trends = cell_trends(frame, metric, rule, max(1, recent))
    lines: list[dict[str, str]] = []
    for t in trends:
        vals = t.values
        prior = np.median(vals[-1 - WINDOW:-1]) if len(vals) > 1 else None
        lines.append({"cell": cell_label(t.key), "fingerprint": t.fingerprint_id,
                      "nights": str(len(vals)),
                      "recent (oldest → newest)": " ".join(f"{v:.4g}" for v in vals[-nights:]),
                      "latest vs median before": "-" if prior is None else
                      rule.show_change(rule.to_scale(vals[-1]) - rule.to_scale(prior)),
                      "step changes": "; ".join(f"**{s.verdict}** {s.change} at night {s.night} "
                                                f"(commit {(s.commit or '?')[:8]}, {s.nights_after} night(s) since)"
                                                for s in t.steps) or "none"})
    out = [f"## {metric} per cell · {history_file(history)} · {frame['night'].nunique()} night(s)\n",
           tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) if lines else "(no values)"]
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
        out.append(f"\nplot: {trend_plot(trends, metric, metric, plot_dir / f'trend-{slug(metric)}.png')}")
    return "\n".join(out)
