"""``run_suite.py gpu-check``: gpu tests, a smoke sweep, deploy-bench at real sizes and scaling, on one device."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import RESULTS, Parser, resolve_device


def parser() -> Parser:
    p = Parser(prog="run_suite.py gpu-check", description="The GPU validation in one command; results under "
               "results/reference/<name>-<gpu>/ with summary.md.")
    p.add_argument("--name", default="gpu-check", help="folder name prefix under results/reference/")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu only with --quick (plumbing check)")
    p.add_argument("--variants", default="ln,un,prepbn,crms")
    p.add_argument("--quick", action="store_true", help="tiny settings everywhere: checks the plumbing in minutes")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/reference/<name>-<gpu>)")
    return p


def command(argv: list[str]) -> int:
    from suite.bench.gpu_check import run_gpu_check
    from suite.errors import UsageError
    args = parser().parse_args(argv)
    device = resolve_device(args.device)
    if device == "cpu" and not args.quick:
        raise UsageError("gpu-check measures a GPU; on a CPU only --quick (the plumbing check) makes sense")
    return run_gpu_check(name=args.name, device=device, quick=args.quick, variants=args.variants,
                         results_dir=RESULTS, out=args.out)
