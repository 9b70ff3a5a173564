"""The default command: ``python run_suite.py [options]`` runs a sweep and prints the leaderboard."""
from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from suite.cli.common import (
    RESULTS,
    Parser,
    add_nightly_arguments,
    check_positive,
    check_seconds,
    nightly_options,
    parse_list,
    parse_seeds,
    resolve_device,
)
from suite.errors import UsageError

DEFAULT_VARIANTS = "ln,un,prepbn,crms"


def parser() -> Parser:
    p = Parser(prog="run_suite.py", description="Cross tasks with norm/attention variants; train, deploy, "
               "measure; append rows; print the leaderboard. Subcommands: calibrate, deploy-bench, scaling, merge, "
               "compare, history.")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help=f"comma list of norm[+attention][@placement] (default {DEFAULT_VARIANTS})")
    p.add_argument("--tasks", default=None, help="comma list (default: the default tasks, see --list)")
    p.add_argument("--profile", default="smoke", help="smoke (embedded data, minutes on CPU) or paper")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seeds", default="0", help="comma list of integers (default 0)")
    p.add_argument("--data-root", type=Path, default=None, help="folder holding the real datasets (imagenet/, ...)")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default results/runs/<time>-<profile>-<device>)")
    p.add_argument("--resume", action="store_true", help="complete the run in --out (default: the latest run)")
    p.add_argument("--list", action="store_true", help="list variants, tasks and models, then exit")
    p.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimizer steps")
    p.add_argument("--timing-seconds", type=float, default=None, help="interleaved timing budget per model")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in every process")
    p.add_argument("--jobs", type=int, default=1, help="train N cells at once on CPU, each with an equal share of "
                   "the threads (timing and memory still run alone); `make run` uses 2")
    p.add_argument("--cell-timeout", type=float, default=None, help="seconds before a cell process is killed")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's global batch (paper recipes "
                   "scale the learning rate linearly)")
    p.add_argument("--throughput-batch", type=int, default=None, help="override the task's throughput batch")
    p.add_argument("--nproc-per-node", type=int, default=1, help="train each cell with N processes (torchrun, DDP)")
    p.add_argument("--sync-bn", action="store_true", help="with --nproc-per-node > 1: BN-family statistics "
                   "averaged over processes (default: per process)")
    p.add_argument("--runtime", default="eager", metavar="R,...", help="runtimes every deployed model is measured "
                   "under: eager (default), compile, onnxruntime, cudagraphs (see --list)")
    p.add_argument("--precision", default="fp32", metavar="P,...", help="inference precisions: fp32 (default), bf16, "
                   "fp16; quality is evaluated again in each")
    p.add_argument("--amp", default=None, choices=["bf16", "fp16", "none"], help="train under autocast (CUDA only; "
                   "the paper profiles default to their recipe's, 'none' turns it off)")
    p.add_argument("--inline", action="store_true", help="run cells, timing and memory in this process (for a "
                   "debugger or quick checks: no isolation, memory figures are the whole process's)")
    p.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N: whole (task, seed) groups, "
                   "sorted and dealt round-robin; combine the shards with `merge`")
    p.add_argument("--set", action="append", default=[], metavar="VARIANT.KEY=VALUE", dest="overrides",
                   help="override a norm keyword of one variant (repeatable), e.g. prepbn.total_steps=500; "
                        "recorded in the row's model.variant_kwargs")
    add_nightly_arguments(p)  # --compare, --fail-on-regression, --history, --window
    return p


def command(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list:
        print(listing())
        return 0
    cfg = resumed_config(argv, args) if args.resume else run_config(args)
    nightly = nightly_options(args)  # reads the baseline now: a bad one must fail before hours of sweeping
    if cfg.launch != "inline":  # workers fork from a server that imports torch & co. while the sweep starts
        from suite.launch import start_server
        start_server()
    if cfg.threads:
        import torch
        torch.set_num_threads(cfg.threads)
    from suite.regression.nightly import finish
    from suite.report.store import Store
    from suite.sweep.runner import run_sweep
    code = run_sweep(cfg)
    return max(code, finish(cfg.out, Store(cfg.out).rows(), nightly))


def run_config(args: argparse.Namespace) -> Any:
    """The sweep's ``RunConfig``, built once from validated arguments."""
    from suite.sweep.config import RunConfig
    from suite.sweep.shard import parse_shard
    from suite.task import TASKS
    from suite.variants import parse_variant
    variants = [parse_variant(v).name for v in parse_list(args.variants, "--variants")]
    tasks = parse_list(args.tasks, "--tasks") if args.tasks else default_tasks()
    for t in tasks:
        TASKS.get(t)
    seeds = parse_seeds(args.seeds)
    device = resolve_device(args.device)
    check_positive([("--max-steps", args.max_steps), ("--threads", args.threads), ("--batch-size", args.batch_size),
                    ("--throughput-batch", args.throughput_batch), ("--nproc-per-node", args.nproc_per_node),
                    ("--window", args.window), ("--jobs", args.jobs)])
    check_seconds([("--timing-seconds", args.timing_seconds), ("--cell-timeout", args.cell_timeout)])
    from suite.measure.runtimes import check_names
    runtimes, precisions = parse_list(args.runtime, "--runtime"), parse_list(args.precision, "--precision")
    check_names(runtimes, precisions)
    if args.amp in ("bf16", "fp16") and device != "cuda":
        raise UsageError(f"--amp {args.amp} trains under CUDA autocast; use --device cuda, or leave --amp out on CPU")
    if args.jobs > 1 and (args.inline or args.nproc_per_node > 1):
        raise UsageError("--jobs trains cells side by side, each in its own process; with --inline or "
                         "--nproc-per-node use --jobs 1 (make run: JOBS=1)")
    jobs = args.jobs if device == "cpu" else 1
    if jobs != args.jobs:
        print(f"normbench: --jobs {args.jobs} splits CPU cores; on {device} the cells train one at a time",
              file=sys.stderr)
    if args.inline and args.nproc_per_node > 1:
        raise UsageError("--inline runs one process; drop --inline to train with --nproc-per-node > 1 (torchrun)")
    if device == "cuda" and args.nproc_per_node > 1:
        import torch
        check_nproc(args.nproc_per_node, torch.cuda.device_count())
    overrides = parse_overrides(args.overrides, variants)
    if args.data_root is not None and not args.data_root.is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a folder; give the folder that holds imagenet/, "
                         f"coco/ or wikitext/ in their public layouts, or leave it out for embedded data")
    for t in tasks:
        TASKS.get(t)().profile(args.profile, args.data_root)
    shard = parse_shard(args.shard) if args.shard is not None else None
    return RunConfig(tasks=tasks, variants=variants, seeds=seeds,
                     out=resolve_out(args.out, args.resume, args.profile, device), profile=args.profile,
                     device=device, data_root=args.data_root, resume=args.resume, max_steps=args.max_steps,
                     timing_s_per_model=args.timing_seconds, threads=args.threads, cell_timeout_s=args.cell_timeout,
                     variant_kwargs=overrides, batch_size=args.batch_size, throughput_batch=args.throughput_batch,
                     nproc_per_node=args.nproc_per_node, sync_bn=args.sync_bn, shard=shard,
                     launch="inline" if args.inline else "subprocess", runtimes=runtimes, precisions=precisions,
                     amp=args.amp, jobs=jobs)


def check_nproc(nproc: int, gpus: int) -> None:
    """One process per GPU: a DDP cell on CUDA cannot have more processes than visible GPUs (a rank
    without a GPU fails at ``set_device`` while the others wait for it)."""
    if nproc > gpus:
        raise UsageError(f"--nproc-per-node {nproc} needs {nproc} GPUs (one per process), but {gpus} "
                         f"{'is' if gpus == 1 else 'are'} visible here (CUDA_VISIBLE_DEVICES); use "
                         f"--nproc-per-node {max(gpus, 1)} or fewer")


def resumed_config(argv: list[str], args: argparse.Namespace) -> Any:
    """The configuration of the run in ``--out`` (or the latest run), exactly as it was started.

    The stored configuration becomes the defaults and the command line is parsed again on top:
    an option that would change what a cell means and differs from the stored one is refused
    (one line, the first difference); ``--cell-timeout`` and the nightly options may change.
    """
    from suite.sweep.config import RunConfig, first_difference
    out = resolve_out(args.out, True, args.profile, "cpu")
    stored = read_run_config(out)
    p = parser()
    p.set_defaults(**as_defaults(stored), out=out)
    asked = run_config(p.parse_args(argv))
    diff = first_difference(stored, asked)
    if diff is not None:
        flag, was, now = diff
        raise UsageError(f"--resume completes the run in {out} as it was started, and {flag} would change it "
                         f"({_show(was)} -> {_show(now)}); drop {flag} to complete it, or start a new run "
                         f"with another --out")
    # the folder given is the run's home, even when it was moved or copied since it was started
    return RunConfig.from_json(stored.as_json() | {"resume": True, "cell_timeout_s": asked.cell_timeout_s,
                                                   "out": str(out)})


def read_run_config(out: Path) -> Any:
    from suite import jsonio
    from suite.sweep.config import RunConfig
    path = out / "run.json"
    if not path.exists():
        raise UsageError(f"--resume: {out} holds no run.json, so there is no run to complete; start one with "
                         f"--out {out} (without --resume)")
    try:
        return RunConfig.from_json(jsonio.read(path)["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--resume: {path} is not a run configuration this suite can read ({type(e).__name__}); "
                         f"start a new run with another --out") from None


def as_defaults(cfg: Any) -> dict[str, Any]:
    """A stored ``RunConfig`` as this parser's defaults (the strings and values the options take)."""
    return {"tasks": ",".join(cfg.tasks), "variants": ",".join(cfg.variants),
            "seeds": ",".join(str(s) for s in cfg.seeds), "profile": cfg.profile, "device": cfg.device,
            "data_root": cfg.data_root, "max_steps": cfg.max_steps, "timing_seconds": cfg.timing_s_per_model,
            "threads": cfg.threads, "cell_timeout": cfg.cell_timeout_s, "batch_size": cfg.batch_size,
            "throughput_batch": cfg.throughput_batch, "nproc_per_node": cfg.nproc_per_node, "sync_bn": cfg.sync_bn,
            "shard": None if cfg.shard is None else str(cfg.shard), "inline": cfg.launch == "inline",
            "overrides": [f"{v}.{k}={json.dumps(x)}" for v, kw in cfg.variant_kwargs.items() for k, x in kw.items()],
            "runtime": ",".join(cfg.runtimes), "precision": ",".join(cfg.precisions), "amp": cfg.amp,
            "jobs": cfg.jobs}


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def parse_overrides(items: list[str], variants: list[str]) -> dict[str, dict[str, Any]]:
    """``["prepbn.total_steps=500"]`` -> ``{"prepbn": {"total_steps": 500}}``: checked against the norm's
    keywords and converted to each keyword's type (that of its default, else its annotation)."""
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
        params = {k: v for k, v in inspect.signature(NORMS.get(norm).__init__).parameters.items()
                  if v.kind is v.KEYWORD_ONLY}
        if key not in params:
            raise UsageError(f"--set {item!r}: {norm} has no keyword {key!r} (known: {', '.join(params) or 'none'})")
        out.setdefault(variant, {})[key] = typed_value(item, params[key], value)
    return out


def typed_value(item: str, param: inspect.Parameter, text: str) -> Any:
    """``text`` as the type of the keyword: bool, int, float, str or tuple (``none`` where it may be None)."""
    kind = _kind(param)
    annotation = str(param.annotation)
    if text.strip().lower() in ("none", "null") and (param.default is None or "None" in annotation):
        return None
    try:
        return _convert(kind, text.strip())
    except ValueError:
        example = {"bool": "true or false", "int": "an integer (or N% of the run's steps)", "float": "a number",
                   "tuple": "a list like 1,2"}
        raise UsageError(f"--set {item!r}: {param.name} takes {example.get(kind, 'a value')} "
                         f"(its default is {param.default!r})") from None


def _kind(param: inspect.Parameter) -> str:
    default = param.default
    if isinstance(default, bool):
        return "bool"
    for name, typ in (("int", int), ("float", float), ("str", str)):
        if type(default) is typ:
            return name
    if isinstance(default, (tuple, list)):
        return "tuple"
    annotation = str(param.annotation)
    for name in ("bool", "int", "float", "tuple", "str"):
        if name in annotation:
            return name
    return "json"


def _convert(kind: str, text: str) -> Any:
    if kind == "bool":
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() not in words:
            raise ValueError(text)
        return words[text.lower()]
    if kind == "int" and text.endswith("%"):  # a fraction of the cell's optimizer steps, resolved per cell
        share = float(text[:-1])
        if not 0 < share <= 1000:
            raise ValueError(text)
        return f"{share:g}%"
    if kind == "int":
        value = float(text)
        if not value.is_integer():
            raise ValueError(text)
        return int(value)
    if kind == "float":
        return float(text)
    if kind == "str":
        return text
    if kind == "tuple":
        parsed = json.loads(text) if text.startswith("[") else [t.strip() for t in text.split(",")]
        return tuple(_number(v) for v in parsed)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def default_tasks() -> list[str]:
    from suite.task import TASKS
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
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return runs / f"{stamp}-{profile}-{device}"


def listing() -> str:
    from suite.registry import describe
    from suite.task import TASKS
    from suite.variants import ATTENTION, NORMS, PLACEMENTS
    lines = ["norms (use as --variants NAME):"]
    lines += [f"  {n:10s} {describe(c)}" for n, c in NORMS.items()]
    lines += ["attention (use as --variants NORM+NAME; modifiers combine with a mechanism: NORM+MECHANISM+MODIFIER):"]
    lines += [f"  {n:10s} {describe(c)}{' [modifier]' if getattr(c, 'modifier', False) else ''}"
              for n, c in ATTENTION.items()] or ["  (none registered)"]
    lines += ["placements (use as --variants NORM@NAME or NORM+ATTENTION@NAME; default: the model's own, Pre-LN):"]
    lines += [f"  @{n:9s} {describe(c)}" for n, c in PLACEMENTS.items()] or ["  (none registered)"]
    from suite.measure.runtimes import PRECISIONS, RUNTIMES
    lines += ["runtimes (use as --runtime NAME,...):"]
    lines += [f"  {n:12s} {describe(c)}" for n, c in RUNTIMES.items()]
    lines += [f"precisions (use as --precision NAME,...): {', '.join(PRECISIONS)}"]
    lines += ["tasks (use as --tasks NAME):"]
    lines += [f"  {n:14s} {describe(c)}{'' if getattr(c, 'default', True) else ' [not in the default sweep]'}"
              for n, c in TASKS.items()]
    lines += ["models (suite.create_model):",
              "  any timm vit_*, deit_*, deit3_*, swin_* name, e.g. vit_tiny_patch16_224, deit_small_patch16_224,"
              " swin_tiny_patch4_window7_224 (random init; kwargs pass through to timm)"]
    return "\n".join(lines)
