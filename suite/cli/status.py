"""``run_suite.py status DIR``: where a run stands, cell by cell (``suite.sweep.status``)."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import Parser


def parser() -> Parser:
    p = Parser(prog="run_suite.py status", description="Where a run stands: each cell's training, its "
               "recorded rows and, under --launcher slurm, its job; answers while the sweep runs.")
    p.add_argument("dir", type=Path, help="the run's --out folder")
    return p


def command(argv: list[str]) -> int:
    from suite.sweep.status import render, run_status
    args = parser().parse_args(argv)
    print(render(run_status(args.dir), args.dir))
    return 0
