"""``run_suite.py deploy-bench``: interleaved deployed latency of variants, as ratios to ``none`` and ``ln``."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import RESULTS, Parser, add_device_arguments, check_positive, parse_list, resolve_device


def parser() -> Parser:
    p = Parser(prog="run_suite.py deploy-bench", description="Interleaved deployed latency of variants, as ratios.")
    p.add_argument("--model", default="deit_tiny_patch16_224")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--variants", default=None, help="comma list (default: every registered norm)")
    p.add_argument("--batch", type=int, default=32, help="the second batch size (the first is 1)")
    p.add_argument("--seconds", type=float, default=300.0, help="interleaved timing budget, all variants together")
    add_device_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="folder for report.json and report.md")
    return p


def command(argv: list[str]) -> int:
    from suite.bench.deploy_bench import run_deploy_bench
    from suite.variants import parse_variant
    args = parser().parse_args(argv)
    check_positive([("--img-size", args.img_size), ("--batch", args.batch), ("--threads", args.threads)])
    variants = [parse_variant(v).name for v in parse_list(args.variants, "--variants")] if args.variants else None
    return run_deploy_bench(model=args.model, img_size=args.img_size, variants=variants, batch=args.batch,
                            seconds=args.seconds, device=resolve_device(args.device), threads=args.threads,
                            out=args.out, results_dir=RESULTS)
