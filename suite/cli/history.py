"""``run_suite.py history``: a metric's trend per cell over the recorded nights, step changes flagged."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import Parser, check_positive
from suite.regression.history import DEFAULT_HISTORY


def parser() -> Parser:
    p = Parser(prog="run_suite.py history", description="A metric's trend per cell over the recorded "
               "nights, with step changes over the recent nights flagged.")
    p.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="history folder or file (results/history)")
    p.add_argument("--metric", default="latency", help="latency, ratio_to_ln, throughput, memory, or a quality metric")
    p.add_argument("--task", default=None)
    p.add_argument("--variant", default=None)
    p.add_argument("--nights", type=int, default=8, help="values shown per cell (newest last)")
    p.add_argument("--recent", type=int, default=7, help="nights searched for step changes")
    p.add_argument("--plot", type=Path, default=None, help="write trend-<metric>.png into this folder")
    return p


def command(argv: list[str]) -> int:
    from suite.regression.nightly import history_report
    args = parser().parse_args(argv)
    check_positive([("--nights", args.nights), ("--recent", args.recent)])
    print(history_report(args.history, args.metric, task=args.task, variant=args.variant, nights=args.nights,
                         recent=args.recent, plot_dir=args.plot))
    return 0
