"""One cell = one (task, variant, seed): build, train, evaluate, deploy, check, save.

A worker of ``suite.launch``: ``python -m suite.sweep.cell SPEC.json`` in its own
process (or under torchrun, or inline). Writes ``result.json`` into the cell's folder and,
when the cell succeeds, the deployed model as weights plus its build description
(``suite.models.artifact``) and a few real eval inputs; timing and memory are measured
afterwards from those files by their own workers, once per runtime and precision. While it
trains, the cell may save checkpoints in ``checkpoint/`` (``suite.sweep.checkpoint``): run again
after a kill, it continues from the last one; they are removed once the cell has succeeded.
"""
from __future__ import annotations

import copy
import dataclasses
import errno
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import cast

import numpy as np
import torch

from suite import jsonio, parts
from suite.env import job_info, now_iso
from suite.errors import Diverged, NotApplicable
from suite.measure.env import gpus_used
from suite.measure.inputs import count_flops, make_input
from suite.measure.runtimes import PRECISIONS, precision_unsupported
from suite.models.artifact import InPrecision, build, save_deployed
from suite.models.create import count_params
from suite.models.deploy import count_norm_modules, deploy, deploy_error
from suite.sweep.checkpoint import Checkpointer, interval_for, remove_checkpoints
from suite.sweep.config import PROBE_FILE, PROBE_INPUTS, RANK_ERROR, CellSpec
from suite.sweep.distributed import finish, init_from_env, wrap
from suite.sweep.identity import cell_id, cell_plan, cell_profile, variant_kwargs
from suite.sweep.outcome import CellReport, CellResult, PrecisionQuality
from suite.sweep.train import train
from suite.task import TASKS, Profile, Task, to_device
from suite.variants import parse_variant
from suite.variants.base import TrainingContext, after_training, before_training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_cell(spec: CellSpec, out: CellReport | None = None) -> CellReport | None:
    """The whole life of a cell; raises on failure (the caller turns it into a status).

    ``out`` is filled as the cell goes, so a failing cell still reports what it got to (its
    dataset identity, profile and versions). In a multi-process cell every rank trains; rank 0
    alone evaluates, deploys and returns the result (the other ranks return None).
    """
    out = {} if out is None else out
    task: Task = TASKS.get(spec.task)()
    root = spec.grid.data_root
    profile = cell_profile(spec)
    device = torch.device(spec.grid.device)
    dist = init_from_env(device)
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if dist.world > 1:  # the recipe's batch is global: split it over the processes
        profile.extra.update(rank=dist.rank, world=dist.world)
        profile.recipe.batch_size = max(1, profile.recipe.batch_size // dist.world)
    variant = parse_variant(spec.variant)
    out["profile_config"] = cast(parts.ProfileConfig, profile.as_dict())   # the schema's profile_config
    out["versions"] = cast(parts.Versions, {"task": task.version, **variant.versions()})
    out["distributed"] = dist.as_row(spec.training.sync_bn)
    info = task.open(root, profile).data.info
    out["dataset"] = cast(parts.DatasetInfo, asdict(info) | {"label": info.label})
    vkw = variant_kwargs(task, variant, profile, spec.variant_kwargs)
    args = task.model_args(variant, vkw)
    seed_everything(spec.seed)
    model = build(args).to(device)
    before_training(variant.norm_cls, model, TrainingContext(steps=profile.recipe.steps, family=task.family,
                                                             world_size=dist.world, sync_bn=spec.training.sync_bn))
    out["model"] = {"name": profile.model, "kwargs": profile.model_kwargs, "variant_kwargs": vkw,
                    "attention": getattr(model, "normbench_attention", None), "params_train": count_params(model),
                    "schedule": schedule(variant.norm_cls, vkw)}
    curve = learning_curve(task, model, device) if dist.main else None
    checkpoint = Checkpointer(spec.cell_dir, dist.rank, cell_id(cell_plan(spec)),
                              interval_for(spec.training.checkpoint_every, profile.name), device)
    stats = train(model, task, device, spec.seed, desc=f"{spec.task}/{spec.variant}/s{spec.seed}",
                  runner=wrap(model, dist, device), show=dist.main and spec.concurrent == 1,
                  amp=training_amp(spec.training.amp, profile, device),
                  curve=curve, checkpoint=checkpoint)
    finish()  # training was the collective part; rank 0 alone recalibrates, evaluates and deploys
    if not dist.main:
        return None
    trained: dict[str, object] = asdict(stats) | {"threads": torch.get_num_threads(), "concurrent": spec.concurrent}
    if device.type == "cuda":
        trained["gpus"] = gpus_used()
    if stats.curve is not None:
        trained["curve"] = {**stats.curve, "metric": task.primary_metric, "eval_items": task.curve_eval_items}
    out["train"] = cast(parts.TrainInfo, trained)   # ``TrainStats`` and the curve's metric: the schema's ``train``
    after_training(variant.norm_cls, model, task.train_batches(spec.seed),
                   lambda batch: task.forward(model, to_device(batch, device)))
    out["quality"] = {**task.evaluate(model.eval(), device)}
    deployed = deploy(model)
    spec_in = task.input_spec()
    out["model"]["params"] = count_params(deployed)
    out["model"]["flops"] = count_flops(deployed, make_input(spec_in, 1, device))
    out |= deployed_facts(task, model, deployed, device, spec_in)
    out["precision_quality"] = precision_quality(task, deployed, device, spec.measurement.precision)
    save_deployed(Path(spec.cell_dir), deployed, args)
    torch.save(task.eval_inputs(PROBE_INPUTS, device).cpu(), Path(spec.cell_dir) / PROBE_FILE)
    return out


def schedule(norm_cls: type, vkw: dict[str, object]) -> parts.Schedule | None:
    """The norm's budget-tied keywords as used and as published (None for a norm without any)."""
    reference = dict(getattr(norm_cls, "reference_kwargs", {}) or {})
    if not reference:
        return None
    used = {k: vkw.get(k, v) for k, v in reference.items()}
    return {"used": used, "reference": reference, "scaled": used != reference}


def learning_curve(task: Task, model: torch.nn.Module, device: torch.device) -> Callable[[], float] | None:
    """The learning curve's evaluation: the primary metric on the first ``curve_eval_items`` eval
    items; None for a task that declares no curve (``curve_eval_items = None``)."""
    n = task.curve_eval_items
    if n is None:
        return None
    return lambda: task.evaluate(model, device, limit=n)[task.primary_metric]


def training_amp(requested: str | None, profile: Profile, device: torch.device) -> str | None:
    """Autocast dtype for training: ``--amp`` when given (``none`` turns it off), else the profile's
    default (the paper profiles use it); CUDA only, so a CPU cell trains in full precision."""
    amp = requested if requested is not None else profile.amp
    return amp if device.type == "cuda" and amp in ("bf16", "fp16") else None


def deployed_facts(task: Task, model: torch.nn.Module, deployed: torch.nn.Module, device: torch.device,
                   spec_in: parts.InputSpec) -> CellReport:
    """The deploy check (deployed vs eval-form outputs on real inputs) and what timing needs to know
    (``spec_in``: the task's timing inputs)."""
    probe, probe_dep = task.deploy_probe(model), task.deploy_probe(deployed)
    profile = task.prof
    return {"deploy": {"rel_err": deploy_error(probe, probe_dep, task.sample_inputs(16, device)),
                       "norm_modules_left": count_norm_modules(probe_dep), "checked": type(probe).__name__},
            "input_spec": spec_in, "throughput_batch": profile.throughput_batch,
            "timing_s_per_model": profile.timing_s_per_model, "throughput_unit": task.throughput_unit,
            "metric_better": task.metrics, "primary_metric": task.primary_metric}


def precision_quality(task: Task, deployed: torch.nn.Module, device: torch.device,
                      precisions: list[str]) -> dict[str, PrecisionQuality]:
    """The task's quality of the deployed model run in each low precision this device supports."""
    out: dict[str, PrecisionQuality] = {}
    for p in precisions:
        if p == "fp32" or precision_unsupported(device, p):
            continue
        try:
            low = InPrecision(copy.deepcopy(deployed), PRECISIONS[p]).eval()
            out[p] = {**task.evaluate(low, device)}
        except Exception as e:  # noqa: BLE001 - this precision's rows record it; fp32 and the others go on
            out[p] = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
    return out


def main(spec_path: str) -> int:
    """Run the cell and write ``result.json`` (rank 0). Exit status 0, except in a multi-process
    cell whose rank failed: that rank exits 1, so torchrun ends the whole group at once instead of
    leaving the other ranks waiting in a collective for it; a rank other than 0 first writes its
    message to ``rank-<r>-error.txt``, which the sweep puts in the row."""
    spec = CellSpec.from_json(jsonio.read(Path(spec_path)))
    if spec.threads:
        torch.set_num_threads(spec.threads)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    started, t0 = now_iso(), time.perf_counter()
    partial: CellReport = {}
    try:
        cell = run_cell(spec, partial)
        if cell is None:  # a non-zero rank of a multi-process cell: rank 0 reports
            finish()
            return 0
        result = CellResult.finished(cell)
    except Diverged as e:
        result = CellResult.failure("diverged", str(e), partial)
    except NotApplicable as e:
        result = CellResult.failure("not-applicable", str(e), partial)
    except Exception as e:  # noqa: BLE001 - any failure becomes a row, the sweep goes on
        message = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        if rank != 0:
            traceback.print_exc()
            (Path(spec.cell_dir) / RANK_ERROR.format(rank=rank)).write_text(message + "\n")
            return 1
        if not _written(lambda: (Path(spec.cell_dir) / "error.txt").write_text(traceback.format_exc())):
            return 1
        result = CellResult.failure("error", message, partial)
    result = dataclasses.replace(result, cell_id=cell_id(cell_plan(spec)), started_at=started, finished_at=now_iso(),
                                 cell_seconds=time.perf_counter() - t0, job=job_info())
    if rank == 0 and not _written(lambda: jsonio.write_atomic(Path(spec.cell_dir) / "result.json",
                                                             result.as_json())):
        return 1
    if rank == 0 and result.ok:  # a failed cell keeps them: run again, it continues from the last
        remove_checkpoints(spec.cell_dir)
    if world > 1 and not result.ok:
        return 1  # the other ranks may be waiting for this one in a collective: torchrun ends them
    finish()
    return 0


def _written(write: Callable[[], object]) -> bool:
    """Run ``write``; on a full disk or quota say so in one line (the sweep records the cell as failed
    and stops with the fix) instead of a traceback."""
    try:
        write()
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"normbench: the cell could not write its result: {e.strerror}", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
