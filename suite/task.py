"""The Task API: the small base class every task plugin fills in, and the task registry.

A task owns its data (embedded default and real layout), its recipe per profile, its
loss and its quality metrics. Everything else (training loop, deploy, timing, memory,
rows) is the harness's and identical across tasks. Task plugins live in the top-level
``tasks`` package (one file each) or in a distribution's ``normbench.tasks`` entry points.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

import torch
import torch.nn as nn

from suite.errors import UsageError
from suite.jsonio import json_kwargs
from suite.parts import BuildArgs, InputSpec, JsonObject
from suite.registry import Registry
from suite.variants import Variant

TASKS = Registry("task", "tasks", "normbench.tasks")
register_task = TASKS.register


@dataclass
class Recipe:
    """Optimizer and schedule: AdamW, linear warm-up then cosine decay to ``min_lr``."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.05
    warmup_steps: int = 0
    min_lr: float = 1e-6
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    eval_batch_size: int = 256
    scale_lr_with_batch: bool = False   # linear scaling when the batch is overridden (DeiT's rule)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UsageError(f"recipe steps must be >= 1 (got {self.steps}); use --max-steps N with N >= 1")
        if self.batch_size < 1 or self.lr <= 0:
            raise UsageError(f"recipe needs batch_size >= 1 and lr > 0 (got {self.batch_size}, {self.lr})")
        self.warmup_steps = min(self.warmup_steps, self.steps - 1)


@dataclass
class Profile:
    name: str
    model: str
    model_kwargs: JsonObject
    recipe: Recipe
    throughput_batch: int
    timing_s_per_model: float = 6.0   # interleaved timing budget per model in a group
    extra: JsonObject = field(default_factory=dict)   # the task's own settings (the harness reads none)
    amp: str | None = None            # the recipe's training autocast on CUDA ("bf16" | "fp16"), unless --amp

    def as_dict(self) -> dict[str, object]:
        """The profile as a cell's plan records it. ``amp`` is kept where profiles of earlier versions
        held it (in ``extra``, and only when set), so every ``config_id`` stays what it was."""
        out = asdict(self)
        amp = out.pop("amp")
        if amp is not None:
            out["extra"] = {**out["extra"], "amp": amp}
        return out


@dataclass
class DatasetInfo:
    """Identity of the data a row was produced on; ``kind`` is ``embedded`` or ``real``."""

    name: str
    kind: str
    path: str | None
    n_train: int
    n_eval: int
    fingerprint: str
    num_classes: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} (embedded)" if self.kind == "embedded" else f"{self.name} (real: {self.path})"


class TaskData(Protocol):
    """What ``Task.load`` returns: any object with the identity of the data it holds."""

    info: DatasetInfo


@runtime_checkable
class ShardedData(Protocol):
    """Data that batches itself: endless training batches of ``batch`` items in an order fixed by
    ``seed``, this process's shard (``rank`` of ``world``) of each epoch."""

    def train_batches(self, batch: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Any]: ...


DataT = TypeVar("DataT", bound=TaskData)
S = TypeVar("S", bound=str | int | float)


class TaskNotOpen(RuntimeError):
    """A method that needs the profile and data was called on a task that was never opened."""


class Task(Generic[DataT]):
    """Base class of a task plugin; subclasses register with ``@register_task(name)``.

    Two halves. The configuration (class attributes, ``profiles``, ``profile``, ``data_identity``,
    ``check_data``, ``load``) works on an unbound task: it is what a plan and a ``config_id`` read.
    ``open(data_root, profile)`` loads the data once and binds the task to it and to the profile
    (``self.prof``, ``self.data``); the methods below it (batches, model, loss, metrics, inputs)
    read them and take only what changes per call. ``DataT`` is the type ``load`` returns.
    """

    version = "1"
    family = "vision"                     # "vision" | "detection" | "lm": picks the variants' budget rules
                                          # (a detection task is vision to every rule that does not name it)
    default = True                        # part of a sweep when --tasks is not given
    primary_metric = ""
    metrics: dict[str, str] = {}          # metric -> "higher" | "lower" (which is better)
    throughput_unit = "items/s"
    _bound: tuple[Profile, DataT] | None = None

    # -- configuration ------------------------------------------------------------------
    def profiles(self, embedded: bool) -> dict[str, Profile]:
        raise NotImplementedError

    def profile(self, name: str, data_root: Path | None, max_steps: int | None = None,
                batch_size: int | None = None, throughput_batch: int | None = None) -> Profile:
        profiles = self.profiles(embedded=data_root is None)
        if name not in profiles:
            if data_root is None and name in self.profiles(embedded=False):
                raise UsageError(f"the {name!r} profile of task {self.registered_name!r} runs on real data: "
                                 f"pass --data-root DIR")
            raise UsageError(f"task {self.registered_name!r} has no profile {name!r}; "
                             f"use --profile {' or '.join(sorted(profiles))}")
        prof = profiles[name]
        r = asdict(prof.recipe)
        if max_steps is not None:
            r.update(steps=max_steps, warmup_steps=min(r["warmup_steps"], max(0, max_steps // 10)))
        if batch_size is not None:
            if r["scale_lr_with_batch"]:
                r["lr"] = r["lr"] * batch_size / r["batch_size"]
            r["batch_size"] = batch_size
        prof.recipe = Recipe(**r)
        if throughput_batch is not None:
            prof.throughput_batch = throughput_batch
        return prof

    # -- data -----------------------------------------------------------------------------
    def data_identity(self, data_root: Path | None) -> dict[str, object]:
        """What identifies the data without loading it (part of every row's ``config_id``): the
        embedded set's version, or the real folder. Tasks add what else changes their data."""
        if data_root is None:
            return {"kind": "embedded", "task_version": self.version}
        return {"kind": "real", "path": str((data_root / self.data_folder).resolve())}

    #: the folder of ``--data-root`` this task reads (``imagenet/``, ``coco/``, ``wikitext/``)
    data_folder = ""

    def check_data(self, data_root: Path | None) -> None:
        """Cheap validation of the real layout; raise ``DataError`` naming the file and the fix."""

    def load(self, data_root: Path | None, profile: Profile) -> DataT:
        """Load the data; the returned object has an ``info: DatasetInfo`` attribute."""
        raise NotImplementedError

    # -- binding --------------------------------------------------------------------------
    def open(self, data_root: Path | None, profile: Profile) -> Self:
        """Load the data for ``profile`` and bind the task to both; returns the task itself."""
        self._bound = (profile, self.load(data_root, profile))
        return self

    def _binding(self) -> tuple[Profile, DataT]:
        if self._bound is None:
            raise TaskNotOpen(f"task {self.registered_name!r} is not open: call task.open(data_root, profile) "
                              f"first (it loads the data and binds the profile)")
        return self._bound

    @property
    def prof(self) -> Profile:
        """The profile the task was opened with (``profile(...)`` is the method that makes one)."""
        return self._binding()[0]

    @property
    def data(self) -> DataT:
        """The data ``open`` loaded."""
        return self._binding()[1]

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world) of this process in a multi-process cell."""
        extra = self.prof.extra
        return setting(extra, "rank", int, 0), setting(extra, "world", int, 1)

    # -- bound: batches, model, loss, metrics ---------------------------------------------
    def train_batches(self, seed: int) -> Iterator[Any]:
        """An endless iterator of training batches, its order fixed by ``seed``. Default: the data's
        own ``train_batches(batch, seed, rank, world)`` (``ShardedData``) at the recipe's batch size."""
        data = self.data
        if not isinstance(data, ShardedData):
            raise NotImplementedError(f"task {self.registered_name!r}: override train_batches(seed), or give "
                                      f"its data a train_batches(batch, seed, rank, world) method")
        return data.train_batches(self.prof.recipe.batch_size, seed, *self.shard)

    def model_args(self, variant: Variant, variant_kwargs: Mapping[str, object]) -> BuildArgs:
        """How to build the cell's model, as plain JSON (``suite.models.artifact.build`` reads it):
        a ``factory`` (``model`` or ``detector``), the model ``name``, the ``variant``, its
        ``variant_kwargs``, the factory's ``kwargs`` and how it is ``call``-ed when timed."""
        prof = self.prof
        return {"factory": "model", "name": prof.model, "variant": variant.name,
                "variant_kwargs": json_kwargs(variant_kwargs), "kwargs": dict(prof.model_kwargs), "call": "module"}

    def build_model(self, variant: Variant, variant_kwargs: Mapping[str, object]) -> nn.Module:
        from suite.models.artifact import build
        return build(self.model_args(variant, variant_kwargs))

    def forward(self, model: nn.Module, batch: Any) -> Any:
        """Run the model on the inputs of one (device) batch; used by after-training hooks.
        Default: the first item of a tuple/list batch (inputs, targets), else the batch itself."""
        return model(batch[0] if isinstance(batch, (tuple, list)) else batch)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    #: eval items (images, windows) a learning-curve point evaluates: a fixed subset, the first ones
    #: (``evaluate(..., limit=N)``); None declares a task without learning curves, whose ``evaluate``
    #: is only ever called without ``limit``
    curve_eval_items: int | None = 128

    def evaluate(self, model: nn.Module, device: torch.device, limit: int | None = None) -> dict[str, float]:
        """The task's metrics on its eval split; ``limit``: on its first ``limit`` items only (the
        learning curve's cheap evaluation; the primary metric at least)."""
        raise NotImplementedError

    def deploy_probe(self, model: nn.Module) -> nn.Module:
        """The part of the model whose deployed vs eval outputs are compared (default: all of it)."""
        return model

    def sample_inputs(self, n: int, device: torch.device) -> torch.Tensor:
        """A few real eval inputs, for the deployed-vs-eval check."""
        raise NotImplementedError

    def eval_inputs(self, n: int, device: torch.device) -> torch.Tensor:
        """A few real eval inputs shaped like the timing inputs (for runtime agreement checks);
        default: ``sample_inputs``."""
        return self.sample_inputs(n, device)

    def input_spec(self) -> InputSpec:
        """How to make timing inputs: ``{"kind": "image", "shape": [C, H, W]}`` or tokens."""
        raise NotImplementedError

    @property
    def registered_name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)


def setting(bag: JsonObject, key: str, kind: type[S], default: S | None = None) -> S:
    """``bag[key]`` (a profile's ``extra`` or ``model_kwargs``) checked to be a ``kind``; ``default``
    where the key is absent. A missing or mistyped value is a one-line ``UsageError`` naming it."""
    value = bag.get(key, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise UsageError(f"profile setting {key!r} must be {kind.__name__} (got {value!r})")
    return value


def setting_object(bag: JsonObject, key: str) -> JsonObject | None:
    """``bag[key]`` checked to be a JSON object (keyword arguments, say), None where absent or null."""
    value = bag.get(key)
    if value is not None and not isinstance(value, dict):
        raise UsageError(f"profile setting {key!r} must be an object of keywords (got {value!r})")
    return value


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
