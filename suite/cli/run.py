"""The default command: ``python run_suite.py [options]`` runs a sweep and prints the leaderboard.

Its options are declared once, in ``suite.sweep.options``: the parser, the configuration, the
``--resume`` check and ``run.json`` are made from those declarations here and in
``suite.sweep.config``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import types
from pathlib import Path
from typing import Any

from suite.cli.common import RESULTS, Parser, add_nightly_arguments, check_positive, nightly_options
from suite.errors import UsageError


def parser() -> Parser:
    """The sweep's command line: every declared option (``suite.sweep.options``, plugins' sections
    included), ``--list`` and the nightly options."""
    from suite.cli.main import SUBCOMMANDS
    from suite.declare import add_arguments
    p = Parser(prog="run_suite.py", description="Cross tasks with norm/attention variants; train, deploy, "
               f"measure; append rows; print the leaderboard. Subcommands: {', '.join(SUBCOMMANDS)}.")
    p.add_argument("--list", action="store_true", help="list variants, tasks and models, then exit")
    add_arguments(p, _sections())
    add_nightly_arguments(p)  # --compare, --fail-on-regression, --history, --window
    return p


def _sections() -> list[Any]:
    from suite.sweep.options import section_classes
    return list(section_classes().values())


def command(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list:
        print(listing())
        return 0
    cfg = resumed_config(args) if getattr(args, "output.resume", False) else run_config(args)
    nightly = nightly_options(args)  # reads the baseline now: a bad one must fail before hours of sweeping
    if not cfg.launch.inline and cfg.launch.launcher == "local":  # workers fork from a server that imports torch
        # & co. while the sweep starts (on a cluster the workers start inside the jobs)
        from suite.launch import start_server
        start_server()
    if cfg.launch.threads:
        import torch
        torch.set_num_threads(cfg.launch.threads)
    from suite.regression.nightly import finish
    from suite.report.store import Store
    from suite.sweep.runner import run_sweep
    code = run_sweep(cfg)
    return max(code, finish(cfg.out, Store(cfg.out).rows(), nightly))


def given_options(argv: list[str]) -> types.SimpleNamespace:
    """What a sweep command line says, by field name (the texts as given, the plain defaults for the
    rest): for checking a command line without running it (the workflow's, gpu-check's)."""
    from suite.declare import declared
    args = parser().parse_args(argv)
    values = {}
    for cls in _sections():
        for d in declared(cls):
            plain = d.field().default
            values[d.name] = getattr(args, d.dest, None if plain is dataclasses.MISSING else plain)
    return types.SimpleNamespace(**values, list=args.list)


def run_config(args: argparse.Namespace, stored: Any = None) -> Any:
    """The sweep's ``RunConfig``: each section from the options given (converted and checked by their
    declarations) over ``stored`` (a resumed run's configuration) or the defaults, then checked whole."""
    from suite.declare import build, given
    from suite.sweep.config import RunConfig, checked
    from suite.sweep.options import section_classes
    check_positive([("--window", args.window)])
    old = {s.name: s for s in stored.sections()} if stored else {}
    sections = {n: build(c, given(args, c), old.get(n)) for n, c in section_classes().items()}
    cfg = checked(RunConfig.assemble(sections), note=stored is None)
    out = resolve_out(cfg.output.out, cfg.output.resume, cfg.grid.profile, cfg.grid.device)
    return cfg.replace(output=dataclasses.replace(cfg.output, out=out))


def resumed_config(args: argparse.Namespace) -> Any:
    """The configuration of the run in ``--out`` (or the latest run), exactly as it was started.

    The options given are applied over the stored configuration; one that would change what a
    cell means (a ``meaning`` option) and differs from the stored value is refused (one line, the
    first difference); the others (``--cell-timeout``, the nightly options) may change.
    """
    from suite.sweep.config import first_difference
    out = resolve_out(getattr(args, "output.out", None), True, "smoke", "cpu")
    stored = read_run_config(out)
    asked = run_config(args, stored)
    diff = first_difference(stored, asked)
    if diff is not None:
        flag, was, now = diff
        raise UsageError(f"--resume completes the run in {out} as it was started, and {flag} would change it "
                         f"({was} -> {now}); drop {flag} to complete it, or start a new run with another --out")
    # the folder given is the run's home, even when it was moved or copied since it was started
    return asked.replace(output=dataclasses.replace(asked.output, out=out, resume=True))


def read_run_config(out: Path) -> Any:
    from suite import jsonio
    from suite.sweep.config import RunConfig
    path = out / "run.json"
    if not path.exists():
        raise UsageError(f"--resume: {out} holds no run.json, so there is no run to complete; start one with "
                         f"--out {out} (without --resume)")
    try:
        return RunConfig.from_json(jsonio.read(path)["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"--resume: {path} is not a run configuration this suite can read ({type(e).__name__}); "
                         f"start a new run with another --out") from None


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
