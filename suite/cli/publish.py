"""``run_suite.py publish RUN_OR_HISTORY... --out SITE``: the static results site (``suite.site``)."""
from __future__ import annotations

import sys
from pathlib import Path

from suite.cli.common import Parser


def parser() -> Parser:
    p = Parser(prog="run_suite.py publish", description="A static site of the leaderboard, the deployment "
               "matrix and the nightly history, from run folders and/or history stores; it loads nothing "
               "from the network and opens from file:// or GitHub Pages (docs/results.md).")
    p.add_argument("inputs", type=Path, nargs="+", metavar="RUN_OR_HISTORY",
                   help="run folders (or their rows.jsonl) for the leaderboard; history folders (results/history) "
                        "or history.jsonl files for the history pages")
    p.add_argument("--out", type=Path, required=True, metavar="SITE",
                   help="the site's folder (new, empty, or one publish wrote: it is replaced whole)")
    return p


def command(argv: list[str]) -> int:
    from suite.site.build import publish
    args = parser().parse_args(argv)
    done = publish(args.inputs, args.out)
    print(f"site: {done.out}/index.html ({done.sections} leaderboard sections, {done.cells} history cells over "
          f"{done.nights} nights, {done.regressions} regressions called; {done.seconds:.1f} s)", file=sys.stderr)
    return 0
