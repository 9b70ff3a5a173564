"""The sweep's configuration, built once at the edge (the CLI) and passed inward whole.

``RunConfig`` is the whole sweep: the declared sections of ``suite.sweep.options`` (and those
plugins declared), checked together by ``checked``. ``CellSpec`` is what one cell process is
asked to do: its task, variant and seed with the grid, training and measurement sections as
parsed (written to the cell's ``spec.json`` and read back by the cell).

``run.json`` keeps ``RunConfig.as_json()``: one object per section under ``config_version`` 2.
A ``run.json`` written before the sections (a flat object) is read through each option's
``legacy`` key, so old runs still resume.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.declare import Section
from suite.errors import UsageError
from suite.parts import Json, JsonObject
from suite.report.rows import cell_key
from suite.sweep.options import SECTIONS, Grid, Launch, Measurement, Output, Training, section_classes

CONFIG_VERSION = 2
#: real eval inputs a cell saves next to its deployed model, for the runtimes' agreement check
PROBE_INPUTS, PROBE_FILE = 16, "probe_inputs.pt"
#: where a rank other than 0 of a multi-process cell writes why it failed (rank 0 writes result.json)
RANK_ERROR = "rank-{rank}-error.txt"


@dataclass(frozen=True, kw_only=True)
class CellSpec:
    task: str
    variant: str
    seed: int
    cell_dir: str
    grid: Grid
    training: Training
    measurement: Measurement
    threads: int | None = None            # torch threads of this cell (its share with --jobs)
    concurrent: int = 1                   # cells of the sweep training at the same time as this one
    plugins: dict[str, Section] = field(default_factory=dict)

    @property
    def variant_kwargs(self) -> dict[str, object]:
        """This variant's ``--set`` keywords."""
        return dict(self.grid.set.get(self.variant, {}))

    def key(self, runtime: str = "eager", precision: str = "fp32") -> str:
        return cell_key(self.task, self.variant, self.seed, self.grid.profile, self.grid.device, runtime, precision)

    def sections(self) -> list[Section]:
        return [self.grid, self.training, self.measurement, *self.plugins.values()]

    def as_json(self) -> JsonObject:
        return {"config_version": CONFIG_VERSION, "task": self.task, "variant": self.variant, "seed": self.seed,
                "cell_dir": self.cell_dir,
                "threads": self.threads, "concurrent": self.concurrent,
                **{s.name: s.as_json() for s in self.sections()}}

    @classmethod
    def from_json(cls, data: JsonObject) -> CellSpec:
        """The spec ``as_json`` wrote (a cell's ``spec.json``, read by the cell the sweep started)."""
        sections = _sections_from(data)
        threads, concurrent = data.get("threads"), data.get("concurrent", 1)
        return cls(task=str(data["task"]), variant=str(data["variant"]), seed=int(typing.cast(int, data["seed"])),
                   cell_dir=str(data["cell_dir"]), threads=threads if isinstance(threads, int) else None,
                   concurrent=concurrent if isinstance(concurrent, int) else 1,
                   grid=typing.cast(Grid, sections["grid"]), training=typing.cast(Training, sections["training"]),
                   measurement=typing.cast(Measurement, sections["measurement"]), plugins=_plugins(sections))


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    grid: Grid = field(default_factory=lambda: Grid())
    training: Training = field(default_factory=lambda: Training())
    measurement: Measurement = field(default_factory=lambda: Measurement())
    launch: Launch = field(default_factory=lambda: Launch())
    output: Output = field(default_factory=lambda: Output())
    plugins: dict[str, Section] = field(default_factory=dict)   # sections plugins declared, by name

    @property
    def out(self) -> Path:
        assert self.output.out is not None, "the CLI resolves --out before the sweep starts"
        return self.output.out

    @property
    def baseline(self) -> str:
        """The variant every ratio is taken to: ``--baseline``, else ln when it is swept, else the first."""
        variants = self.grid.variants
        return self.measurement.baseline or ("ln" if "ln" in variants else variants[0])

    @property
    def cell_threads(self) -> int | None:
        """Torch threads of one training cell: all of ``--threads`` alone, an equal share with ``--jobs``."""
        if self.launch.jobs == 1:
            return self.launch.threads
        return max(1, (self.launch.threads or available_cores()) // self.launch.jobs)

    @property
    def measurements(self) -> list[tuple[str, str]]:
        """Every (runtime, precision) each trained cell is measured under."""
        return [(r, p) for r in self.measurement.runtime for p in self.measurement.precision]

    def sections(self) -> list[Section]:
        return [self.grid, self.training, self.measurement, self.launch, self.output, *self.plugins.values()]

    def cell(self, task: str, variant: str, seed: int) -> CellSpec:
        return CellSpec(task=task, variant=variant, seed=seed,
                        cell_dir=str(self.out / "cells" / f"{task}-{variant}-s{seed}"),
                        grid=self.grid, training=self.training, measurement=self.measurement,
                        threads=self.cell_threads, concurrent=self.launch.jobs, plugins=dict(self.plugins))

    def as_json(self) -> JsonObject:
        return {"config_version": CONFIG_VERSION, **{s.name: s.as_json() for s in self.sections()}}

    @classmethod
    def from_json(cls, data: JsonObject) -> RunConfig:
        """The configuration ``as_json`` wrote (a run's ``run.json``), or the flat one of a run written
        before the sections; what it lacks takes the defaults."""
        return cls.assemble(_sections_from(data))

    @classmethod
    def assemble(cls, sections: dict[str, Section]) -> RunConfig:
        """The configuration of these sections by name (the core ones and those plugins declared)."""
        return cls(grid=typing.cast(Grid, sections["grid"]), training=typing.cast(Training, sections["training"]),
                   measurement=typing.cast(Measurement, sections["measurement"]),
                   launch=typing.cast(Launch, sections["launch"]), output=typing.cast(Output, sections["output"]),
                   plugins=_plugins(sections))

    def replace(self, **sections: Any) -> RunConfig:
        return dataclasses.replace(self, **sections)


def _sections_from(data: JsonObject) -> dict[str, Section]:
    """Every section (core and registered by plugins) from a stored configuration, nested or flat."""
    classes = section_classes()
    if "config_version" in data:
        return {name: c.from_json(_object(data.get(name))) for name, c in classes.items()}
    return {name: c.from_legacy(data) for name, c in classes.items()}  # written before the sections


def _object(value: Json) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _plugins(sections: dict[str, Section]) -> dict[str, Section]:
    return {name: s for name, s in sections.items() if name not in {c.name for c in SECTIONS}}


def checked(cfg: RunConfig, *, note: bool = True) -> RunConfig:
    """``cfg`` after the checks that involve several options (each declared field checked itself
    when its section was made): one ``UsageError`` line naming the fix, or the configuration to run."""
    g, t, m, launch = cfg.grid, cfg.training, cfg.measurement, cfg.launch
    if t.amp in ("bf16", "fp16") and g.device != "cuda":
        raise UsageError(f"--amp {t.amp} trains under CUDA autocast; use --device cuda, or leave --amp out on CPU")
    if launch.jobs > 1 and (launch.inline or t.nproc_per_node > 1):
        raise UsageError("--jobs trains cells side by side, each in its own process; with --inline or "
                         "--nproc-per-node use --jobs 1 (make run: JOBS=1)")
    if launch.launcher == "local" and (t.nodes > 1 or launch.detach):
        flag = f"--nodes {t.nodes}" if t.nodes > 1 else "--detach"
        raise UsageError(f"{flag} needs a cluster: add --launcher slurm (on this machine: "
                         f"{'--nproc-per-node trains a cell with several processes' if t.nodes > 1 else 'drop it'})")
    if launch.gpus is not None:
        check_gpus(launch.gpus, g.device, launch)
    if launch.launcher == "local" and g.device == "cuda":
        from suite.env import resolve_device
        resolve_device("cuda")   # raises the one-line error where this machine has no CUDA
    if launch.launcher == "slurm":
        if launch.inline:
            raise UsageError("--inline runs everything in this process; drop it to run on SLURM, or use "
                             "--launcher local")
        if launch.jobs > 1:
            raise UsageError("--jobs splits this machine's cores between cells; under --launcher slurm every cell "
                             "is its own job: drop --jobs and size the jobs with --slurm-cpus-per-task")
        from suite.sweep.executors import check_slurm
        check_slurm(launch.slurm_partition)
    if launch.inline and t.nproc_per_node > 1:
        raise UsageError("--inline runs one process; drop --inline to train with --nproc-per-node > 1 (torchrun)")
    if g.device == "cuda" and t.nproc_per_node > 1 and launch.launcher == "local":
        from suite import env
        check_nproc(t.nproc_per_node, len(launch.gpus) if launch.gpus is not None else env.visible_gpus())
    for variant, keywords in g.set.items():
        if variant not in g.variants:
            item = f"{variant}.{next(iter(keywords))}"
            raise UsageError(f"--set {item!r} names {variant!r}, which is not in --variants ({','.join(g.variants)})")
    if m.baseline is not None and m.baseline not in g.variants:
        raise UsageError(f"--baseline {m.baseline} is not in --variants ({','.join(g.variants)}); add it there "
                         f"or choose one of them")
    from suite.task import TASKS
    for task in g.tasks:
        TASKS.get(task)().profile(g.profile, g.data_root)
    if launch.jobs > 1 and g.device != "cpu":
        if note:
            print(f"normbench: --jobs {launch.jobs} splits CPU cores; on {g.device} the cells train one at a time",
                  file=sys.stderr)
        cfg = cfg.replace(launch=dataclasses.replace(launch, jobs=1))
    return cfg


def check_gpus(gpus: list[int], device: str, launch: Launch) -> None:
    """``--gpus`` names GPUs of this machine that exist, for a local CUDA sweep with workers of its own."""
    shown = ",".join(map(str, gpus))
    if launch.launcher == "slurm":
        raise UsageError(f"--gpus {shown} picks GPUs of this machine; under --launcher slurm each job gets its "
                         f"GPUs from the scheduler: drop --gpus and give --slurm-gpus-per-node")
    if device != "cuda":
        raise UsageError(f"--gpus {shown} picks the GPUs of a CUDA sweep; add --device cuda, or drop --gpus")
    if launch.inline:
        raise UsageError(f"--gpus {shown} pins each cell's own process to its GPUs; drop --inline")
    from suite import env
    count = env.visible_gpus()
    missing = [g for g in gpus if g >= count]
    if missing:
        seen = f"0-{count - 1}" if count > 1 else ("0" if count == 1 else "none")
        raise UsageError(f"--gpus {shown}: no GPU {missing[0]} here; this machine shows {count} "
                         f"(indices {seen}, within CUDA_VISIBLE_DEVICES): choose among them")


def check_nproc(nproc: int, gpus: int) -> None:
    """One process per GPU: a DDP cell on CUDA cannot have more processes than visible GPUs (a rank
    without a GPU fails at ``set_device`` while the others wait for it)."""
    if nproc > gpus:
        raise UsageError(f"--nproc-per-node {nproc} needs {nproc} GPUs (one per process), but {gpus} "
                         f"{'is' if gpus == 1 else 'are'} visible here (CUDA_VISIBLE_DEVICES); use "
                         f"--nproc-per-node {max(gpus, 1)} or fewer")


def first_difference(stored: RunConfig, asked: RunConfig) -> tuple[str, str, str] | None:
    """(flag, stored value, asked value) of the first meaning-bearing option that differs, or None."""
    from suite.declare import first_difference as differs
    for a, b in zip(stored.sections(), asked.sections(), strict=True):
        diff = differs(a, b)
        if diff is not None:
            d, was, now = diff
            return d.flag, d.show(was), d.show(now)
    return None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

