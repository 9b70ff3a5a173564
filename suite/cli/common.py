"""Argument parsing shared by the subcommands: the parser class, list and device parsing, range checks.

Every check here raises ``UsageError`` with one line that names the fix; ``main`` prints it
and exits 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from suite.declare import (  # noqa: F401 - the subcommands' parsers use them
    check_positive,
    check_seconds,
    parse_list,
    parse_seeds,
)
from suite.env import REPO_ROOT, resolve_device  # noqa: F401 - the subcommands resolve --device with it
from suite.errors import UsageError
from suite.regression.compare import WINDOW
from suite.regression.history import DEFAULT_HISTORY
from suite.regression.nightly import NightlyOptions

RESULTS = REPO_ROOT / "results"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def add_nightly_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compare", type=Path, default=None, metavar="BASELINE",
                   help="verdicts against a run folder, its rows.jsonl, or the history (results/history)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when --compare finds a regression")
    p.add_argument("--history", type=Path, nargs="?", const=DEFAULT_HISTORY, default=None, metavar="PATH",
                   help="append this run to the history store (default path: results/history)")
    p.add_argument("--window", type=int, default=WINDOW, help=f"history nights a cell is judged against ({WINDOW})")


def nightly_options(args: argparse.Namespace) -> NightlyOptions:
    return NightlyOptions(compare=args.compare, history=args.history, fail_on_regression=args.fail_on_regression,
                          window=args.window)
