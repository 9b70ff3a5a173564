"""Command line: ``python run_suite.py [options]`` runs a sweep; subcommands do the rest.

Bad input never shows a traceback: one line on stderr that names the fix, exit status 2.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any, Callable

from suite.env import REPO_ROOT
from suite.errors import UsageError

DEFAULT_VARIANTS = "ln,un,prepbn,crms"
RESULTS = REPO_ROOT / "results"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_list(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UsageError(f"malformed {flag} {text!r}: give a comma-separated list with no empty items, "
                         f"e.g. {flag} ln,none")
    dup = next((t for t in items if items.count(t) > 1), None)
    if dup:
        raise UsageError(f"{flag} lists {dup!r} twice; give each once")
    return items


def parse_seeds(text: str) -> list[int]:
    items = parse_list(text, "--seeds")
    if not all(t.isdigit() for t in items):
        raise UsageError(f"--seeds {text!r} is not a comma-separated list of non-negative integers; e.g. --seeds 0,1,2")
    return [int(t) for t in items]


def resolve_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda, but CUDA is not available here (torch {torch.__version__}, "
                         f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or --device auto")
    return name


def run_parser() -> Parser:
    p = Parser(prog="run_suite.py", description="Cross tasks with norm/attention variants; train, deploy, "
               "measure; append rows; print the leaderboard. Subcommands: calibrate, deploy-bench, scaling, merge, "
               "compare, history.")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma list, norm or norm+attention (default {DEFAULT_VARIANTS})")
    p.add_argument("--tasks", default=None, help="comma list (default: the default tasks, see --list)")
    p.add_argument("--profile", default="smoke", help="smoke (embedded data, minutes on CPU) or paper")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seeds", default="0", help="comma list of integers (default 0)")
    p.add_argument("--data-root", type=Path, default=None, help="folder holding the real datasets (imagenet/, ...)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/runs/<time>-<profile>-<device>)")
    p.add_argument("--resume", action="store_true", help="complete the run in --out (default: the latest run)")
    p.add_argument("--list", action="store_true", help="list variants, tasks and models, then exit")
    p.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimizer steps")
    p.add_argument("--timing-seconds", type=float, default=None, help="interleaved timing budget per model")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in every process")
    p.add_argument("--cell-timeout", type=float, default=None, help="seconds before a cell process is killed")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's global batch (paper recipes "
                   "scale the learning rate linearly)")
    p.add_argument("--throughput-batch", type=int, default=None, help="override the task's throughput batch")
    p.add_argument("--nproc-per-node", type=int, default=1, help="train each cell with N processes (torchrun, DDP)")
    p.add_argument("--sync-bn", action="store_true", help="with --nproc-per-node > 1: BN-family statistics "
                   "averaged over processes (default: per process)")
    p.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N: whole (task, seed) groups, "
                   "sorted and dealt round-robin; combine the shards with `merge`")
    p.add_argument("--set", action="append", default=[], metavar="VARIANT.KEY=VALUE", dest="overrides",
                   help="override a norm keyword of one variant (repeatable), e.g. prepbn.total_steps=500; "
                        "recorded in the row's model.variant_kwargs")
    from suite.nightly import add_arguments
    add_arguments(p)  # --compare, --fail-on-regression, --history, --window
    return p


def cmd_run(argv: list[str]) -> int:
    args = run_parser().parse_args(argv)
    from suite.variants import parse_variant
    from tasks import TASKS
    if args.list:
        print(listing())
        return 0
    variants = [parse_variant(v).name for v in parse_list(args.variants, "--variants")]
    tasks = parse_list(args.tasks, "--tasks") if args.tasks else default_tasks()
    for t in tasks:
        TASKS.get(t)
    seeds = parse_seeds(args.seeds)
    for flag, value in (("--max-steps", args.max_steps), ("--threads", args.threads), ("--batch-size", args.batch_size),
                        ("--throughput-batch", args.throughput_batch), ("--nproc-per-node", args.nproc_per_node)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    overrides = parse_overrides(args.overrides, variants)
    if args.data_root is not None and not args.data_root.is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a folder; give the folder that holds imagenet/, "
                         f"coco/ or wikitext/ in their public layouts, or leave it out for embedded data")
    for t in tasks:
        TASKS.get(t)().profile(args.profile, args.data_root)
    from suite.nightly import finish, options
    from suite.shard import parse_shard
    shard = parse_shard(args.shard) if args.shard is not None else None
    nightly = options(args)
    device = resolve_device(args.device)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from suite.runner import RunConfig, run_sweep
    out = resolve_out(args.out, args.resume, args.profile, device)
    cfg = RunConfig(tasks, variants, seeds, out, args.profile, device, args.data_root, args.resume,
                    args.max_steps, args.timing_seconds, args.threads, args.cell_timeout, shard=shard,
                    batch_size=args.batch_size, throughput_batch=args.throughput_batch,
                    nproc_per_node=args.nproc_per_node, sync_bn=args.sync_bn, variant_kwargs=overrides)
    code = run_sweep(cfg)
    from suite.store import Store
    return max(code, finish(out, Store(out).rows(), nightly))


def parse_overrides(items: list[str], variants: list[str]) -> dict[str, dict[str, Any]]:
    """``["prepbn.total_steps=500"]`` -> ``{"prepbn": {"total_steps": 500}}``, checked against the norm's keywords."""
    import inspect
    import json

    from suite.variants import NORMS, parse_variant
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        variant, dot, key = target.rpartition(".")
        if not (eq and dot and variant and key):
            raise UsageError(f"malformed --set {item!r}: use VARIANT.KEY=VALUE, e.g. --set prepbn.total_steps=500")
        if variant not in variants:
            raise UsageError(f"--set {item!r} names {variant!r}, which is not in --variants ({','.join(variants)})")
        norm = parse_variant(variant).norm
        # the norm contract is Cls(dim, *, keywords): its keyword-only parameters are what --set may change
        keywords = [k for k, v in inspect.signature(NORMS.get(norm).__init__).parameters.items()
                    if v.kind is v.KEYWORD_ONLY]
        if key not in keywords:
            raise UsageError(f"--set {item!r}: {norm} has no keyword {key!r} (known: {', '.join(keywords) or 'none'})")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(variant, {})[key] = parsed
    return out


def default_tasks() -> list[str]:
    from tasks import TASKS
    order = {"imagenet": 0, "coco": 1, "wikitext": 2}
    names = [n for n, cls in TASKS.items() if getattr(cls, "default", True)]
    return sorted(names, key=lambda n: (order.get(n, 99), n))


def resolve_out(out: Path | None, resume: bool, profile: str, device: str) -> Path:
    if out is not None:
        return out
    runs = RESULTS / "runs"
    if resume:
        earlier = sorted(p.parent for p in runs.glob("*/run.json"))
        if not earlier:
            raise UsageError(f"--resume found no earlier run under {runs}; pass --out DIR of the run to complete")
        return earlier[-1]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return runs / f"{stamp}-{profile}-{device}"


def listing() -> str:
    from suite.registry import describe
    from suite.variants import ATTENTION, NORMS
    from tasks import TASKS
    lines = ["norms (use as --variants NAME):"]
    lines += [f"  {n:10s} {describe(c)}" for n, c in NORMS.items()]
    lines += ["attention (use as --variants NORM+NAME):"]
    lines += [f"  {n:10s} {describe(c)}" for n, c in ATTENTION.items()] or ["  (none registered)"]
    lines += ["tasks (use as --tasks NAME):"]
    lines += [f"  {n:14s} {describe(c)}{'' if getattr(c, 'default', True) else ' [not in the default sweep]'}"
              for n, c in TASKS.items()]
    lines += ["models (suite.create_model):",
              "  any timm vit_*, deit_*, deit3_*, swin_* name, e.g. vit_tiny_patch16_224, deit_small_patch16_224,"
              " swin_tiny_patch4_window7_224 (random init; kwargs pass through to timm)"]
    return "\n".join(lines)


def cmd_calibrate(argv: list[str]) -> int:
    from suite.calibrate import calibrate_parser, run_calibration
    args = calibrate_parser(Parser).parse_args(argv)
    return run_calibration(args, resolve_device(args.device), RESULTS)


def cmd_deploy_bench(argv: list[str]) -> int:
    from suite.deploybench import deploy_bench_parser, run_deploy_bench
    args = deploy_bench_parser(Parser).parse_args(argv)
    return run_deploy_bench(args, resolve_device(args.device), RESULTS)


def cmd_scaling(argv: list[str]) -> int:
    from suite.scaling import run_scaling, scaling_parser
    args = scaling_parser(Parser).parse_args(argv)
    return run_scaling(args, resolve_device(args.device), RESULTS)


def cmd_merge(argv: list[str]) -> int:
    from suite.nightly import merge_parser, run_merge
    return run_merge(merge_parser(Parser).parse_args(argv))


def cmd_compare(argv: list[str]) -> int:
    from suite.nightly import compare_parser, run_compare
    return run_compare(compare_parser(Parser).parse_args(argv))


def cmd_history(argv: list[str]) -> int:
    from suite.nightly import history_parser, run_history
    return run_history(history_parser(Parser).parse_args(argv))


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {"calibrate": cmd_calibrate, "deploy-bench": cmd_deploy_bench,
                                                      "scaling": cmd_scaling, "merge": cmd_merge,
                                                      "compare": cmd_compare, "history": cmd_history}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return SUBCOMMANDS[argv[0]](argv[1:])
        return cmd_run(argv)
    except UsageError as e:
        print(f"normbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("normbench: interrupted; recorded rows are kept, continue with --resume", file=sys.stderr)
        return 130
