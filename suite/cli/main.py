"""``python run_suite.py [options]`` runs a sweep; ``python run_suite.py SUBCOMMAND ...`` the rest.

Bad input never shows a traceback: one line on stderr that names the fix, exit status 2.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys
from pathlib import Path

from suite.errors import UsageError

#: subcommand -> the module under ``suite.cli`` whose ``command(argv)`` runs it
SUBCOMMANDS = {"calibrate": "calibrate", "deploy-bench": "deploy_bench", "scaling": "scaling", "merge": "merge",
               "compare": "compare", "history": "history", "gpu-check": "gpu_check", "status": "status",
               "publish": "publish"}


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
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"normbench: error: {no_space(e, argv)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("normbench: interrupted; recorded rows are kept, continue with --resume", file=sys.stderr)
        return 130


def no_space(e: OSError, argv: list[str]) -> str:
    """One line for a full disk or quota: where, and how to go on (the rows written so far are kept)."""
    out = _out_of(argv)
    where = out if out is not None else (Path(e.filename).parent if e.filename else Path("."))
    return (f"no space left for {where} ({e.strerror}); free space there (or raise the quota), then "
            f"`--resume --out {where}` completes the run: the rows written so far are kept")


def _out_of(argv: list[str]) -> Path | None:
    p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    p.add_argument("--out", type=Path, default=None)
    try:
        known, _ = p.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    return known.out


def refuse_busy_out(argv: list[str]) -> None:
    """A sweep asked for a results folder that another live run holds fails before anything heavy is
    imported (torch takes seconds to load), not after."""
    from suite.report.store import refuse_if_locked
    out = _out_of(argv)   # a malformed command line: the sweep's own parser reports it properly
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a new folder (or a run's, with --resume)")
    if out is not None and out.is_dir():
        refuse_if_locked(out)
