"""``python run_suite.py [options]`` runs a sweep; ``python run_suite.py SUBCOMMAND ...`` the rest.

Bad input never shows a traceback: one line on stderr that names the fix, exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from suite.errors import UsageError

#: subcommand -> the module under ``suite.cli`` whose ``command(argv)`` runs it
SUBCOMMANDS = {"calibrate": "calibrate", "deploy-bench": "deploy_bench", "scaling": "scaling", "merge": "merge",
               "compare": "compare", "history": "history", "gpu-check": "gpu_check"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        name = SUBCOMMANDS.get(argv[0]) if argv else None
        if name is not None:
            return importlib.import_module(f"suite.cli.{name}").command(argv[1:])
        refuse_busy_out(argv)
        return importlib.import_module("suite.cli.run").command(argv)
    except UsageError as e:
        print(f"normbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("normbench: interrupted; recorded rows are kept, continue with --resume", file=sys.stderr)
        return 130


def refuse_busy_out(argv: list[str]) -> None:
    """A sweep asked for a results folder that another live run holds fails before anything heavy is
    imported (torch takes seconds to load), not after."""
    from suite.report.store import refuse_if_locked
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    p.add_argument("--out", type=Path, default=None)
    try:
        known, _ = p.parse_known_args(argv)
    except argparse.ArgumentError:  # the sweep's own parser reports it properly
        return
    if known.out is not None:
        refuse_if_locked(known.out)
