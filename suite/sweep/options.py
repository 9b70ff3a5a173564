"""The sweep's options, each declared once (``suite.declare``), in five small sections.

``Grid`` is what is crossed (tasks x variants x seeds, the profile, device and data), ``Training``
how each cell trains, ``Measurement`` what each trained cell is measured under, ``Launch`` how
the work is run, ``Output`` where it goes. A plugin declares its own options the same way: a
``Section`` registered in ``OPTIONS`` (``@OPTIONS.register("name")``, found like the other
plugins) gets its flags, its place in ``run.json``, the ``--resume`` check and, for its
``result="value"`` fields, the cells' ``config_id``, with no other edit.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from suite.declare import Section, option, parse_list, parse_seeds
from suite.env import resolve_device
from suite.errors import UsageError
from suite.registry import Registry
from suite.sweep.shard import Shard, parse_shard
from suite.variants import DEFAULT_SWEEP

#: option sections declared by plugins (the core ones are ``SECTIONS``)
OPTIONS = Registry("option section", None, "normbench.options")


def default_tasks() -> list[str]:
    from suite.task import TASKS
    order = {"imagenet": 0, "coco": 1, "wikitext": 2}
    names = [n for n, cls in TASKS.items() if getattr(cls, "default", True)]
    return sorted(names, key=lambda n: (order.get(n, 99), n))


def _tasks(text: str) -> list[str]:
    from suite.task import TASKS
    names = parse_list(text, "--tasks")
    for t in names:
        TASKS.get(t)
    return names


def _variants(text: str) -> list[str]:
    from suite.variants import parse_variant
    return [parse_variant(v).name for v in parse_list(text, "--variants")]


def _folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise UsageError(f"--data-root {path} is not a folder; give the folder that holds imagenet/, "
                         f"coco/ or wikitext/ in their public layouts, or leave it out for embedded data")
    return path


def _runtimes(text: str) -> list[str]:
    from suite.measure.runtimes import check_names
    names = parse_list(text, "--runtime")
    check_names(names, [])
    return names


def _precisions(text: str) -> list[str]:
    from suite.measure.runtimes import check_names
    names = parse_list(text, "--precision")
    check_names([], names)
    return names


@dataclass(frozen=True)
class Interval:
    """``--checkpoint-every``: every ``steps`` optimizer steps, or every ``minutes`` of training."""
    steps: int | None = None
    minutes: float | None = None

    def __str__(self) -> str:
        return f"{self.steps}" if self.steps is not None else f"{self.minutes:g}m"


def _interval(text: str) -> Interval:
    t = text.strip().lower()
    try:
        interval = Interval(minutes=float(t[:-1])) if t.endswith("m") else Interval(steps=int(t))
    except ValueError:
        interval = Interval(steps=0)
    if not (0 < (interval.steps or interval.minutes or 0) < math.inf):
        raise UsageError(f"--checkpoint-every {text!r}: give a number of optimizer steps (e.g. 500) or of minutes "
                         f"(e.g. 30m), above zero")
    return interval


def _gpus(text: str) -> list[int]:
    items = parse_list(text, "--gpus")
    if not all(t.isdigit() for t in items):
        raise UsageError(f"--gpus {text!r}: give GPU indices as this machine numbers them (nvidia-smi, within "
                         f"CUDA_VISIBLE_DEVICES), e.g. --gpus 0,2,3")
    return [int(t) for t in items]


def _show_gpus(value: list[int] | None) -> str:
    return "all" if value is None else ",".join(map(str, value))


def _overrides(items: list[str]) -> dict[str, dict[str, object]]:
    from suite.sweep.overrides import parse_overrides
    return parse_overrides(items)


def _show_overrides(value: dict[str, dict[str, object]]) -> str:
    return " ".join(f"{v}.{k}={json.dumps(x)}" for v, kw in value.items() for k, x in kw.items()) or "none"


class Grid(Section):
    name, title = "grid", "what is crossed"
    tasks: list[str] = option(default_factory=default_tasks, parse=_tasks, result="effect",
                              help="comma list (default: the default tasks, see --list)")
    variants: list[str] = option(default_factory=lambda: list(DEFAULT_SWEEP), parse=_variants, result="effect",
                                 help=f"comma list of norm[+attention][@placement] (default "
                                      f"{','.join(DEFAULT_SWEEP)})")
    seeds: list[int] = option(default_factory=lambda: [0], parse=parse_seeds, result="effect",
                              help="comma list of integers (default 0)")
    profile: str = option(default="smoke", result="effect", help="smoke (embedded data, minutes on CPU) or paper")
    device: str = option(default_factory=lambda: resolve_device("auto"),
                         parse=lambda name: resolve_device(name, check=False),
                         choices=("auto", "cpu", "cuda"), result="effect",
                         help="auto (default: cuda where available here), cpu or cuda (with --launcher slurm: "
                              "the jobs' nodes need it, not this one)")
    data_root: Path | None = option(default=None, parse=_folder, result="effect",
                                    help="folder holding the real datasets (imagenet/, ...)")
    set: dict[str, dict[str, object]] = option(default_factory=dict, parse=_overrides, append=True,
                                            metavar="VARIANT.KEY=VALUE", result="effect", legacy="variant_kwargs",
                                            show=_show_overrides,
                                            help="override a norm keyword of one variant (repeatable), e.g. "
                                                 "prepbn.total_steps=500; recorded in the row's model.variant_kwargs")
    shard: Shard | None = option(default=None, parse=parse_shard, metavar="I/N", show=str,
                                 help="run shard I of N: whole (task, seed) groups, sorted and dealt round-robin; "
                                      "combine the shards with `merge`")


class Training(Section):
    name, title = "training", "how each cell trains"
    max_steps: int | None = option(default=None, positive=True, result="effect",
                                   help="override the recipe's optimizer steps")
    batch_size: int | None = option(default=None, positive=True, result="effect",
                                    help="override the recipe's global batch (paper recipes scale the learning "
                                         "rate linearly)")
    nproc_per_node: int = option(default=1, positive=True, result="effect",
                                 help="train each cell with N processes per node (torchrun, DDP; one per GPU on CUDA)")
    nodes: int = option(default=1, positive=True, result="effect",
                        help="with --launcher slurm: train each cell as one DDP job across N nodes (--nproc-per-node "
                             "processes on each)")
    sync_bn: bool = option(default=False, result="effect",
                           help="with --nproc-per-node > 1: BN-family statistics averaged over processes (default: "
                                "per process)")
    amp: str | None = option(default=None, choices=("bf16", "fp16", "none"), result="effect",
                             help="train under autocast (CUDA only; the paper profiles default to their recipe's, "
                                  "'none' turns it off)")
    checkpoint_every: Interval | None = option(default=None, parse=_interval, metavar="N|Nm", show=str, meaning=False,
                                               help="save the training state every N optimizer steps (N) or N "
                                                    "minutes (Nm), so a killed, preempted or requeued cell "
                                                    "continues from it (default: none; the paper profile: 30m)")


class Measurement(Section):
    name, title = "measurement", "what each trained cell is measured under"
    runtime: list[str] = option(default_factory=lambda: ["eager"], parse=_runtimes, metavar="R,...", result="effect",
                                legacy="runtimes", help="runtimes every deployed model is measured under: eager "
                                                        "(default), compile, onnxruntime, cudagraphs (see --list)")
    precision: list[str] = option(default_factory=lambda: ["fp32"], parse=_precisions, metavar="P,...",
                                  result="effect", legacy="precisions",
                                  help="inference precisions: fp32 (default), bf16, fp16; quality is evaluated "
                                       "again in each")
    timing_seconds: float | None = option(default=None, positive=True, legacy="timing_s_per_model",
                                          help="interleaved timing budget per model")
    throughput_batch: int | None = option(default=None, positive=True, result="effect",
                                          help="override the task's throughput batch")
    baseline: str | None = option(default=None, parse=lambda text: _variants(text)[0],
                                  help="the variant every ratio is taken to (default: ln when it is swept, "
                                       "else the first of --variants)")


class Launch(Section):
    name, title = "launch", "how the work runs"
    inline: bool = option(default=False, legacy="launch", legacy_read=lambda mode: mode == "inline",
                          help="run cells, timing and memory in this process (for a debugger or quick checks: no "
                               "isolation, memory figures are the whole process's)")
    gpus: list[int] | None = option(default=None, parse=_gpus, metavar="I,...", show=_show_gpus, meaning=False,
                                    help="with --device cuda: the GPUs of this machine the sweep uses (default: all "
                                         "visible); each training cell is pinned to its own, each group is timed "
                                         "alone on one")
    jobs: int = option(default=1, positive=True, help="train N cells at once on CPU, each with an equal share of the "
                                              "threads (timing and memory still run alone); `make run` uses 2")
    threads: int | None = option(default=None, positive=True, help="torch CPU threads in every process")
    cell_timeout: float | None = option(default=None, positive=True, meaning=False, legacy="cell_timeout_s",
                                        help="seconds before a cell process is killed")
    launcher: str = option(default="local", choices=("local", "slurm"), meaning=False,
                           help="where cells and measurement groups run: local (this machine, default) or slurm "
                                "(each training cell a job of an array, each group's timing and memory one job; "
                                "docs/cluster.md)")
    slurm_partition: str | None = option(default=None, meaning=False, metavar="NAME",
                                         help="SLURM partition (default: the cluster's default partition)")
    slurm_time: int = option(default=60, positive=True, meaning=False, metavar="MIN",
                             help="time limit of each job, minutes")
    slurm_gpus_per_node: int | None = option(default=None, positive=True, meaning=False, metavar="N",
                                             help="GPUs each job asks for")
    slurm_cpus_per_task: int | None = option(default=None, positive=True, meaning=False, metavar="N",
                                             help="CPUs each job asks for")
    slurm_mem_gb: float | None = option(default=None, positive=True, meaning=False, metavar="GB",
                                        help="memory each job asks for")
    slurm_account: str | None = option(default=None, meaning=False, metavar="NAME", help="SLURM account")
    slurm_qos: str | None = option(default=None, meaning=False, metavar="NAME", help="SLURM quality of service")
    slurm_constraint: str | None = option(default=None, meaning=False, metavar="FEATURES",
                                          help="SLURM node features (--constraint)")
    slurm_setup: list[str] = option(default_factory=list, append=True, meaning=False, metavar="LINE",
                                    help="a shell line run before each job, e.g. 'module load cuda' (repeatable)")
    slurm_array_parallelism: int = option(default=256, positive=True, meaning=False, metavar="N",
                                          help="training cells of an array running at once")
    slurm_exclusive: bool = option(default=True, meaning=False,
                                   help="each group's timing job has its node to itself (default), so nothing "
                                        "else runs beside what is timed")
    detach: bool = option(default=False, meaning=False,
                          help="with --launcher slurm: return once everything is submitted; a final job assembles "
                               "the rows and reports (follow it with `run_suite.py status DIR`)")


class Output(Section):
    name, title = "output", "where results go"
    out: Path | None = option(default=None, meaning=False,
                              help="results folder (default results/runs/<time>-<profile>-<device>)")
    resume: bool = option(default=False, meaning=False, help="complete the run in --out (default: the latest run)")


#: the core sections, in the order of ``RunConfig``'s fields and of ``--help``
SECTIONS: tuple[type[Section], ...] = (Grid, Training, Measurement, Launch, Output)


def section_classes() -> dict[str, type[Section]]:
    """Every option section by name: the core ones, in order, then those plugins registered."""
    return {c.name: c for c in SECTIONS} | plugin_sections()


def plugin_sections() -> dict[str, type[Section]]:
    """The option sections plugins registered, by name (a section's ``name`` is the one it is registered
    under: it names its object in ``run.json``)."""
    out = dict(OPTIONS.items())
    core = {c.name for c in SECTIONS}
    for name, cls in out.items():
        if name in core or cls.name != name:
            raise UsageError(f"option section {cls.__module__}.{cls.__qualname__} is registered as {name!r} with "
                             f"name {cls.name!r}: give it the name it is registered under, other than "
                             f"{', '.join(sorted(core))}")
    return out
