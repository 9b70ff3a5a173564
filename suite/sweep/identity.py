"""What a cell is: the configuration that defines its result, and a short id of it.

``config_id`` hashes everything that defines one row's result: the task and its version, the
variant with its versions and the keyword arguments it actually gets (budget rules and
``--set`` applied), the profile as run (recipe, model keyword arguments), the seed, the data
identity, the device type, how training was distributed and autocast, and the runtime and
precision it was measured under. ``config_group`` hashes the same without what tells variants
and seeds apart: rows of one group may be ranked and paired against each other; rows of
different groups are never mixed without saying so. A resumed sweep reuses a recorded row only
when its ``config_id`` is the one the run asks for.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import NotRequired, TypedDict

from suite.declare import result_values
from suite.sweep.config import CellSpec
from suite.task import TASKS, Profile, Task
from suite.variants import Variant, parse_variant
from suite.variants.base import budget_kwargs

#: plan fields that tell the variants and seeds of one comparison apart
PER_CELL = ("variant", "variant_versions", "variant_kwargs", "seed")


class Distribution(TypedDict):
    processes: int
    sync_bn: bool


class CellPlan(TypedDict):
    """A trained cell's defining configuration (``cell_plan``): what its ids hash. Keys are never
    renamed nor added unless an option asks (``options``): an unchanged cell keeps its ids."""
    task: str
    task_version: str
    variant: str
    variant_versions: dict[str, str]
    variant_kwargs: dict[str, object]
    profile: dict[str, object]        # ``Profile.as_dict``
    seed: int
    device: str
    data: dict[str, object]           # ``Task.data_identity``
    distributed: Distribution
    amp: str | None
    options: NotRequired[dict[str, object]]


def variant_kwargs(task: Task, variant: Variant, profile: Profile,
                   overrides: Mapping[str, object]) -> dict[str, object]:
    """The norm keywords a cell really uses: its budget rules for this run, then ``--set`` (where a
    value ``"N%"`` means N% of this cell's optimizer steps, at least 1)."""
    steps = profile.recipe.steps
    resolved = {k: max(1, round(float(v[:-1]) / 100 * steps)) if isinstance(v, str) and v.endswith("%") else v
                for k, v in overrides.items()}
    return {**budget_kwargs(variant.norm_cls, steps, task.family), **resolved}


def cell_profile(spec: CellSpec) -> Profile:
    """The profile a cell runs: its task's, with the recipe options the command line gave."""
    task = TASKS.get(spec.task)()
    return task.profile(spec.grid.profile, spec.grid.data_root, spec.training.max_steps, spec.training.batch_size,
                        spec.measurement.throughput_batch)


def cell_plan(spec: CellSpec) -> CellPlan:
    """The trained cell's defining configuration, computed without training (nor loading data).

    Every option declared ``result="effect"`` is here through what it changes; the value of each
    option declared ``result="value"`` is under ``options`` when it is not its default (absent
    otherwise, so a cell that leaves it alone keeps the id it had before the option existed)."""
    task = TASKS.get(spec.task)()
    profile = cell_profile(spec)
    variant = parse_variant(spec.variant)
    plan: CellPlan = {"task": spec.task, "task_version": task.version, "variant": variant.name,
            "variant_versions": variant.versions(), "variant_kwargs": variant_kwargs(task, variant, profile,
                                                                                     spec.variant_kwargs),
            "profile": profile.as_dict(), "seed": spec.seed, "device": spec.grid.device,
            "data": task.data_identity(spec.grid.data_root),
            "distributed": {"processes": spec.training.nproc_per_node * spec.training.nodes,
                            "sync_bn": spec.training.sync_bn},
            "amp": spec.training.amp}
    options = dict(kv for section in spec.sections() for kv in result_values(section))
    if options:
        plan["options"] = options
    return plan


def digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_id(plan: CellPlan) -> str:
    """The trained cell (shared by all its runtimes and precisions)."""
    return digest(plan)


def config_id(plan: CellPlan, runtime: str, precision: str) -> str:
    return digest({**plan, "runtime": runtime, "precision": precision})


def config_group(plan: CellPlan, runtime: str, precision: str) -> str:
    shared = {k: v for k, v in plan.items() if k not in PER_CELL}
    return digest(shared | {"runtime": runtime, "precision": precision})
