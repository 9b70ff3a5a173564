"""Argument parsing shared by the subcommands: the parser class, list and device parsing, range checks.

Every check here raises ``UsageError`` with one line that names the fix; ``main`` prints it
and exits 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from suite.env import REPO_ROOT
from suite.errors import UsageError
from suite.regression.compare import WINDOW
from suite.regression.history import DEFAULT_HISTORY
from suite.regression.nightly import NightlyOptions

RESULTS = REPO_ROOT / "results"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_list(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UsageError(f"malformed {flag} {text!r}: give a comma-separated list with no empty items, "
                         f"e.g. {flag} ln,none")
    dup = next((t for t in items if items.count(t) > 1), None)
    if dup:
        raise UsageError(f"{flag} lists {dup!r} twice; give each once")
    return items


def parse_seeds(text: str) -> list[int]:
    items = parse_list(text, "--seeds")
    if not all(t.isdigit() for t in items):
        raise UsageError(f"--seeds {text!r} is not a comma-separated list of non-negative integers; e.g. --seeds 0,1,2")
    return [int(t) for t in items]


def check_positive(pairs: list[tuple[str, Any]]) -> None:
    """Each (flag, value) with a value given must be an integer >= 1."""
    for flag, value in pairs:
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")


def check_seconds(pairs: list[tuple[str, Any]]) -> None:
    """Each (flag, seconds) with a value given must be a finite number > 0."""
    for flag, value in pairs:
        if value is not None and not (0 < value < float("inf")):
            raise UsageError(f"{flag} must be a positive number of seconds, got {value}")


def resolve_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda, but CUDA is not available here (torch {torch.__version__}, "
                         f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or --device auto")
    return name


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
