"""The command-line side of the nightly checks.

After a sweep (``--compare``, ``--history``) and in the ``merge``, ``compare`` and
``history`` subcommands. Order matters when the baseline is the history itself: the run
is judged against the history first, then appended to it, so it never judges itself.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from suite.compare import WINDOW, Baseline, cell_label, compare_rows, load_baseline, publish, regressed_cells
from suite.env import REPO_ROOT
from suite.errors import UsageError
from suite.history import DEFAULT_HISTORY, append_night, cell_trends, history_file, read_history, to_frame
from suite.leaderboard import latest_rows, write_reports
from suite.plots import slug, trend_plot
from suite.shard import merge_rows, write_merged

TREND_METRICS = ("latency", "ratio_to_ln", "memory")  # plus each task's primary quality metric


@dataclass
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
        return (self.history is not None and history_file(self.compare).resolve() == history_file(self.history).resolve()
                and not history_file(self.history).exists())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compare", type=Path, default=None, metavar="BASELINE",
                   help="verdicts against a run folder, its rows.jsonl, or the history (results/history)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when --compare finds a regression")
    p.add_argument("--history", type=Path, nargs="?", const=DEFAULT_HISTORY, default=None, metavar="PATH",
                   help="append this run to the history store (default path: results/history)")
    p.add_argument("--window", type=int, default=WINDOW, help=f"history nights a cell is judged against ({WINDOW})")


def options(args: argparse.Namespace) -> NightlyOptions:
    return NightlyOptions(args.compare, args.history, args.fail_on_regression, args.window)


def finish(out: Path, rows: list[dict[str, Any]], opts: NightlyOptions) -> int:
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


def trend_links(history: Path, rows: list[dict[str, Any]], out: Path) -> list[tuple[str, str]]:
    """Trend PNGs of this run's cells over the history, for the leaderboard to link."""
    frame, rules = to_frame(read_history(history))
    frame = frame[frame["key"].isin({r["key"] for r in rows})]
    metrics = list(TREND_METRICS) + sorted({r["primary_metric"] for r in rows if r.get("primary_metric")})
    links = []
    for metric in [m for m in metrics if m in rules]:
        trends = cell_trends(frame, metric, rules[metric])
        name = f"trend-{slug(metric)}.png"
        trend_plot(trends, metric, metric, Path(out) / name)
        links.append((f"trend of {metric} over the history", name))
    return links


def merge_parser(parser_cls: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = parser_cls(prog="run_suite.py merge", description="Combine the --out folders of --shard runs into one "
                   "store, table and leaderboard; duplicates and missing cells are reported.")
    p.add_argument("dirs", nargs="+", type=Path, help="shard result folders")
    p.add_argument("--out", type=Path, default=None, help="new results folder (default results/runs/<time>-merged)")
    add_arguments(p)
    return p


def run_merge(args: argparse.Namespace) -> int:
    opts = options(args)
    report = merge_rows(args.dirs)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO_ROOT / "results" / "runs" / f"{stamp}-merged"
    write_merged(report, out, args.dirs)
    for message in report.messages():
        print(f"normbench: warning: {message}", file=sys.stderr)
    print(write_reports(report.rows, out))
    print(f"\nmerged {len(report.rows)} rows from {len(args.dirs)} folder(s) into {out}/", file=sys.stderr)
    return finish(out, report.rows, opts)


def compare_parser(parser_cls: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = parser_cls(prog="run_suite.py compare", description="Verdicts of a finished run against a baseline.")
    p.add_argument("new", type=Path, help="the run to judge: a run folder or its rows.jsonl")
    p.add_argument("baseline", type=Path, help="a run folder, its rows.jsonl, or the history (results/history)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 on any regression")
    p.add_argument("--window", type=int, default=WINDOW, help=f"history nights a cell is judged against ({WINDOW})")
    p.add_argument("--out", type=Path, default=None, help="also write verdicts.md and verdicts.json here")
    return p


def run_compare(args: argparse.Namespace) -> int:
    new = load_baseline(args.new).nights[-1]
    opts = NightlyOptions(args.baseline, None, args.fail_on_regression, args.window)
    return finish(args.out, new, opts)


def history_parser(parser_cls: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = parser_cls(prog="run_suite.py history", description="A metric's trend per cell over the recorded "
                   "nights, with step changes over the recent nights flagged.")
    p.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="history folder or file (results/history)")
    p.add_argument("--metric", default="latency", help="latency, ratio_to_ln, throughput, memory, or a quality metric")
    p.add_argument("--task", default=None)
    p.add_argument("--variant", default=None)
    p.add_argument("--nights", type=int, default=8, help="values shown per cell (newest last)")
    p.add_argument("--recent", type=int, default=7, help="nights searched for step changes")
    p.add_argument("--plot", type=Path, default=None, help="write trend-<metric>.png into this folder")
    return p


def run_history(args: argparse.Namespace) -> int:
    frame, rules = to_frame(read_history(args.history))
    if args.metric not in rules:
        raise UsageError(f"--metric {args.metric!r} is not in the history; use one of {', '.join(sorted(rules))}")
    for col in ("task", "variant"):
        if getattr(args, col):
            frame = frame[frame[col] == getattr(args, col)]
    rule = rules[args.metric]
    trends = cell_trends(frame, args.metric, rule, max(1, args.recent))
    lines = []
    for t in trends:
        vals = t["values"]
        prior = np.median(vals[-1 - WINDOW:-1]) if len(vals) > 1 else None
        lines.append({"cell": cell_label(t["key"]), "fingerprint": t["fingerprint_id"],
                      "nights": str(len(vals)), "recent (oldest → newest)": " ".join(f"{v:.4g}" for v in vals[-args.nights:]),
                      "latest vs median before": "-" if prior is None else
                      rule.show_change(rule.to_scale(vals[-1]) - rule.to_scale(prior)),
                      "step changes": "; ".join(f"**{s.verdict}** {s.change} at night {s.night} "
                                                f"(commit {(s.commit or '?')[:8]}, {s.nights_after} night(s) since)"
                                                for s in t["steps"]) or "none"})
    print(f"## {args.metric} per cell · {history_file(args.history)} · {frame['night'].nunique()} night(s)\n")
    print(tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True) if lines else "(no values)")
    if args.plot is not None:
        args.plot.mkdir(parents=True, exist_ok=True)
        print(f"\nplot: {trend_plot(trends, args.metric, args.metric, args.plot / f'trend-{slug(args.metric)}.png')}")
    return 0
