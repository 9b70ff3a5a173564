"""``run_suite.py gpu-check``: the GPU validation under one time budget, ending with a two-file bundle."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import RESULTS, Parser, check_positive, check_seconds, resolve_device


def parser() -> Parser:
    p = Parser(prog="run_suite.py gpu-check", description="The GPU validation in one command, in order of value "
               "under --budget seconds: environment, gpu tests, deploy-bench at real sizes, a short sweep, the rest; "
               "results under results/gpu-check/<name>-<gpu>/, summary.md and one .tar.gz in --bundle.")
    p.add_argument("--budget", type=float, default=480.0, help="wall-clock seconds for the whole check (default 480: "
                   "one 10-minute device call with room to start and to return the bundle)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu runs the same script without a "
                   "GPU (a plumbing check: CUDA-only steps give not-applicable rows)")
    p.add_argument("--name", default="gpu-check", help="folder name prefix")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/gpu-check/<name>-<gpu>); "
                   "run again on the same folder, finished steps are not repeated")
    p.add_argument("--bundle", type=Path, default=None, help="where summary.md and the .tar.gz go (default OUT/bundle; "
                   "on the device machine: $OUT)")
    p.add_argument("--wheelhouse", type=Path, default=None, help="folder of wheels to install first with --no-index "
                   "(default .whl/ when it exists: make wheelhouse)")
    p.add_argument("--seconds", type=float, default=8.0, help="deploy-bench timing per (runtime, precision) group")
    p.add_argument("--build-jobs", type=int, default=6, help="deploy-bench: compile the models this many processes "
                   "at once before each compiled group (warms inductor's cache)")
    return p


def command(argv: list[str]) -> int:
    from suite.bench.gpu_check import run_gpu_check
    args = parser().parse_args(argv)
    check_seconds([("--budget", args.budget), ("--seconds", args.seconds)])
    check_positive([("--build-jobs", args.build_jobs)])
    return run_gpu_check(name=args.name, device=resolve_device(args.device), budget_s=args.budget,
                         results_dir=RESULTS, out=args.out, bundle_dir=args.bundle, wheelhouse=args.wheelhouse,
                         seconds=args.seconds, build_jobs=args.build_jobs)
