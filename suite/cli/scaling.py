"""``run_suite.py scaling``: attention-only latency against sequence length, softmax vs SLA."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import (
    RESULTS,
    Parser,
    add_device_arguments,
    check_positive,
    check_seconds,
    parse_list,
    resolve_device,
)
from suite.errors import UsageError


def parser() -> Parser:
    p = Parser(prog="run_suite.py scaling", description="Attention-only latency vs tokens: softmax vs SLA.")
    p.add_argument("--tokens", default="196,784,3136,12544", help="comma list of square token counts")
    p.add_argument("--dims", default="192,384", help="comma list of widths C (head width 64)")
    p.add_argument("--seconds", type=float, default=8.0, help="interleaved budget per (C, N)")
    add_device_arguments(p)
    p.add_argument("--out", type=Path, default=None)
    return p


def _ints(text: str, flag: str) -> list[int]:
    items = parse_list(text, flag)
    if not all(t.isdigit() and int(t) > 0 for t in items):
        raise UsageError(f"{flag} {text!r} is not a comma-separated list of positive integers")
    return [int(t) for t in items]


def command(argv: list[str]) -> int:
    from suite.bench.scaling import run_scaling
    args = parser().parse_args(argv)
    check_seconds([("--seconds", args.seconds)])
    check_positive([("--threads", args.threads)])
    return run_scaling(tokens=_ints(args.tokens, "--tokens"), dims=_ints(args.dims, "--dims"), seconds=args.seconds,
                       device=resolve_device(args.device), threads=args.threads, out=args.out, results_dir=RESULTS)
