"""``run_suite.py deploy-bench``: interleaved deployed latency of variants, as ratios to ``none`` and ``ln``."""
from __future__ import annotations

from pathlib import Path

from suite.cli.common import (
    RESULTS,
    Parser,
    add_device_arguments,
    add_nightly_arguments,
    check_positive,
    check_seconds,
    nightly_options,
    parse_list,
    resolve_device,
)


def parser() -> Parser:
    p = Parser(prog="run_suite.py deploy-bench", description="Interleaved deployed latency of variants, as ratios.")
    p.add_argument("--model", default="deit_tiny_patch16_224", help="a timm ViT/DeiT/Swin name or an LM config "
                   "(gpt2-small, llama-small, ...)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence for a language model")
    p.add_argument("--variants", default=None, help="comma list (default: every registered norm)")
    p.add_argument("--batch", type=int, default=8, help="the second batch size (the first is 1); 0: batch-1 latency "
                   "only, so a compiling runtime builds one shape")
    p.add_argument("--seconds", type=float, default=60.0, help="interleaved timing budget of each (runtime, "
                   "precision) group, all variants together")
    p.add_argument("--runtime", default="eager", metavar="R,...", help="runtimes (see run_suite.py --list)")
    p.add_argument("--precision", default="fp32", metavar="P,...", help="fp32, bf16, fp16")
    p.add_argument("--build-jobs", type=int, default=1, help="for a compiling runtime, build the models N processes at "
                   "once before each group, so the timing worker's builds read the compiled code from inductor's disk "
                   "cache (the timing itself stays one process)")
    add_device_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="folder for report.json, report.md and rows.jsonl")
    add_nightly_arguments(p)  # --compare, --fail-on-regression, --history, --window: judged like a sweep
    return p


def command(argv: list[str]) -> int:
    from suite.bench.deploy_bench import run_deploy_bench
    from suite.errors import UsageError
    from suite.measure.runtimes import check_names
    from suite.models.create import check_model_name
    from suite.variants import parse_variant
    args = parser().parse_args(argv)
    check_seconds([("--seconds", args.seconds)])
    check_positive([("--img-size", args.img_size), ("--seq-len", args.seq_len), ("--threads", args.threads),
                    ("--build-jobs", args.build_jobs)])
    if args.batch < 0:
        raise UsageError(f"--batch must be 0 (batch-1 latency only) or a positive integer, got {args.batch}")
    check_model_name(args.model)
    variants = [parse_variant(v).name for v in parse_list(args.variants, "--variants")] if args.variants else None
    runtimes, precisions = parse_list(args.runtime, "--runtime"), parse_list(args.precision, "--precision")
    check_names(runtimes, precisions)
    return run_deploy_bench(model=args.model, img_size=args.img_size, seq_len=args.seq_len, variants=variants,
                            batch=args.batch, seconds=args.seconds, runtimes=runtimes, precisions=precisions,
                            device=resolve_device(args.device), threads=args.threads, out=args.out,
                            results_dir=RESULTS, nightly=nightly_options(args), build_jobs=args.build_jobs)
