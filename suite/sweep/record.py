"""One results row from what a cell and its group's timing returned (the schema: ``suite.report.rows``)."""
from __future__ import annotations

from dataclasses import dataclass

from suite.env import now_iso
from suite.measure.jobs import TimingResult
from suite.parts import DatasetInfo, LauncherName, Memory, Provenance, RowDoc
from suite.report.rows import RowKey, build_row
from suite.sweep.config import CellSpec
from suite.sweep.distributed import DistInfo
from suite.sweep.identity import CellPlan, config_group, config_id
from suite.sweep.outcome import CellResult
from suite.variants import parse_variant


@dataclass(frozen=True)
class RunContext:
    """What every row of one run shares."""
    run_id: str
    launcher: LauncherName
    provenance: Provenance


def make_row(ctx: RunContext, spec: CellSpec, r: CellResult, timing: TimingResult | None = None, *,
             memory: Memory | None = None, runtime: str = "eager", precision: str = "fp32",
             plan: CellPlan | None = None) -> RowDoc:
    """``ctx``: what the run's rows share; ``r``: the cell's result with
    this measurement's status; ``timing``: the timing group of this (runtime, precision), absent when
    nothing was timed; ``memory``: this model's memory probe.

    Quality is the cell's: in fp32 the trained model's evaluation, in a low precision the
    deployed model's evaluation in that precision (with eager PyTorch), with the change
    against fp32 in ``quality_delta``. How closely this runtime reproduces eager fp32 is
    ``agreement``. ``plan`` (``suite.sweep.identity.cell_plan``) gives the row its ``config_id``
    and ``config_group``."""
    v = parse_variant(spec.variant)
    t = None if timing is None else timing.models.get(spec.variant)
    fp32, quality = r.quality_in("fp32"), r.quality_in(precision)
    delta: dict[str, float | None] = {m: q - f for m, q in quality.items() if precision != "fp32"
                                      and q is not None and (f := fp32.get(m)) is not None}
    root = None if spec.grid.data_root is None else str(spec.grid.data_root)
    dataset: DatasetInfo = r.dataset or {"kind": "embedded" if root is None else "real", "path": root,
                                         "label": "embedded" if root is None else f"real: {root}"}
    key = RowKey(task=spec.task, variant=spec.variant, norm=v.norm, attention=v.attention, seed=spec.seed,
                 profile=spec.grid.profile, device=spec.grid.device, runtime=runtime, precision=precision,
                 config_id=None if plan is None else config_id(plan, runtime, precision),
                 config_group=None if plan is None else config_group(plan, runtime, precision))
    return build_row(key, run_id=ctx.run_id, status=r.status, message=r.message,
                     provenance=ctx.provenance, recorded_at=now_iso(), measured=t, timing=timing,
                     quality=quality, quality_delta=delta, primary_metric=r.primary_metric,
                     metric_better=r.metric_better or {}, memory=memory, model=r.model, train=r.train,
                     deploy=r.deploy, dataset=dataset,
                     # a cell that never started (bad data) still says how it was asked to train
                     distributed=r.distributed or DistInfo(world=spec.training.nproc_per_node).as_row(
                         spec.training.sync_bn),
                     launcher=ctx.launcher, versions=r.versions, profile_config=r.profile_config,
                     started_at=r.started_at, finished_at=r.finished_at,
                     scheduler=None if r.job is None and (timing is None or timing.job is None) else
                     {"train": r.job, "measure": None if timing is None else timing.job})
