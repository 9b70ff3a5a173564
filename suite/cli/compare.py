"""``run_suite.py compare NEW BASELINE``: verdicts of a finished run against a run or the history."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import Parser
from suite.regression.compare import WINDOW


def parser() -> Parser:
    p = Parser(prog="run_suite.py compare", description="Verdicts of a finished run against a baseline.")
    p.add_argument("new", type=Path, help="the run to judge: a run folder or its rows.jsonl")
    p.add_argument("baseline", type=Path, help="a run folder, its rows.jsonl, or the history (results/history)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 on any regression")
    p.add_argument("--window", type=int, default=WINDOW, help=f"history nights a cell is judged against ({WINDOW})")
    p.add_argument("--out", type=Path, default=None, help="also write verdicts.md and verdicts.json here")
    return p


def command(argv: list[str]) -> int:
    from suite.regression.compare import load_baseline
    from suite.regression.nightly import NightlyOptions, finish
    args = parser().parse_args(argv)
    new = load_baseline(args.new).nights[-1]
    opts = NightlyOptions(compare=args.baseline, fail_on_regression=args.fail_on_regression, window=args.window)
    return finish(args.out, new, opts)
