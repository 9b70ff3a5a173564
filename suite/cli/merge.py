"""``run_suite.py merge DIR... [--out OUT]``: combine the folders of ``--shard`` runs into one store."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from suite.cli.common import RESULTS, Parser, add_nightly_arguments, nightly_options


def parser() -> Parser:
    p = Parser(prog="run_suite.py merge", description="Combine the --out folders of --shard runs into one "
               "store, table and leaderboard; duplicates and missing cells are reported.")
    p.add_argument("dirs", nargs="+", type=Path, help="shard result folders")
    p.add_argument("--out", type=Path, default=None, help="new results folder (default results/runs/<time>-merged)")
    add_nightly_arguments(p)
    return p


def command(argv: list[str]) -> int:
    from suite.regression.nightly import finish
    from suite.report.leaderboard import write_reports
    from suite.sweep.merge import merge_rows, write_merged
    args = parser().parse_args(argv)
    opts = nightly_options(args)
    report = merge_rows(args.dirs)
    out = args.out or RESULTS / "runs" / f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-merged"
    write_merged(report, out, args.dirs)
    for message in report.messages():
        print(f"normbench: warning: {message}", file=sys.stderr)
    print(write_reports(report.rows, out))
    print(f"\nmerged {len(report.rows)} rows from {len(args.dirs)} folder(s) into {out}/", file=sys.stderr)
    return finish(out, report.rows, opts)
