"""``run_suite.py calibrate``: time one model under two names; the ratio's interval must contain 1."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import RESULTS, Parser, add_device_arguments, check_positive, check_seconds, resolve_device


def parser() -> Parser:
    p = Parser(prog="run_suite.py calibrate", description="Time one model under two names; report the ratio and its "
               "interval.")
    p.add_argument("--model", default="deit_tiny_patch16_224", help="timm model name (random init)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--seconds", type=float, default=60.0, help="interleaved timing budget (both names together)")
    p.add_argument("--batch", type=int, default=8, help="throughput batch")
    add_device_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="JSON report (default results/calibration/<time>.json)")
    return p


def command(argv: list[str]) -> int:
    from suite.bench.calibrate import run_calibration
    args = parser().parse_args(argv)
    check_seconds([("--seconds", args.seconds)])
    check_positive([("--img-size", args.img_size), ("--batch", args.batch), ("--threads", args.threads)])
    return run_calibration(model=args.model, img_size=args.img_size, seconds=args.seconds, batch=args.batch,
                           device=resolve_device(args.device), threads=args.threads, out=args.out,
                           results_dir=RESULTS)
