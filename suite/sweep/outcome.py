"""What a cell process reports (its ``result.json``), typed: ``CellResult``.

The cell fills it as it goes, so a cell that fails still says what it got to (its data, profile,
versions); the runner reads it back (``from_json``, which also reads the ``result.json`` of
earlier versions: the field names are the same) and turns it, with the group's timing and the
model's memory, into rows (``suite.sweep.record``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypedDict

from suite.measure.jobs import Message
from suite.parts import (
    DatasetInfo,
    DeployInfo,
    Distributed,
    InputSpec,
    JobInfo,
    JsonObject,
    ModelInfo,
    ProfileConfig,
    Status,
    TrainInfo,
    Versions,
)

#: a model's scores by metric; a low precision that could not be evaluated holds ``{"error": ...}``
Quality = dict[str, float | None]
PrecisionQuality = dict[str, float | str | None]

#: what a failed cell keeps from what it got to: what identifies it, not its scores
IDENTIFYING = ("dataset", "profile_config", "versions", "distributed")


class CellReport(TypedDict, total=False):
    """What a cell has got to, filled as it goes (``suite.sweep.cell.run_cell``); the fields of
    ``CellResult`` but its status and timestamps."""
    profile_config: ProfileConfig
    versions: Versions
    distributed: Distributed
    dataset: DatasetInfo
    model: ModelInfo
    train: TrainInfo
    quality: Quality
    precision_quality: dict[str, PrecisionQuality]
    deploy: DeployInfo
    input_spec: InputSpec
    primary_metric: str
    metric_better: dict[str, str]
    throughput_batch: int
    timing_s_per_model: float
    throughput_unit: str


@dataclass(frozen=True, kw_only=True)
class CellResult(Message):
    status: Status
    message: str = ""
    cell_id: str | None = None                     # ``suite.sweep.identity.cell_id`` of what was trained
    started_at: str | None = None
    finished_at: str | None = None
    cell_seconds: float = 0.0
    profile_config: ProfileConfig | None = None    # the profile as run
    versions: Versions | None = None
    distributed: Distributed | None = None
    dataset: DatasetInfo | None = None
    model: ModelInfo | None = None
    train: TrainInfo | None = None
    quality: Quality | None = None                 # the trained model's evaluation (fp32)
    precision_quality: dict[str, PrecisionQuality] | None = None   # the deployed model's, per low precision
    deploy: DeployInfo | None = None               # the deploy check
    input_spec: InputSpec | None = None            # what timing and memory feed the deployed model
    primary_metric: str | None = None
    metric_better: dict[str, str] | None = None
    throughput_batch: int | None = None            # the profile's, as the cell ran (kept for readers of result.json)
    timing_s_per_model: float | None = None
    throughput_unit: str | None = None
    job: JobInfo | None = None                     # the scheduler job the cell trained in (None: none)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def quality_in(self, precision: str) -> Quality:
        """The quality a row of this precision reports: fp32's, or the deployed model's in ``precision``
        (empty where that precision could not be evaluated)."""
        if precision == "fp32":
            return dict(self.quality or {})
        low = self._low(precision)
        return {} if "error" in low else {m: v for m, v in low.items() if not isinstance(v, str)}

    def evaluation_error(self, precision: str) -> str | None:
        """Why the deployed model could not be evaluated in a low ``precision`` (None: it was, or fp32)."""
        error = self._low(precision).get("error") if precision != "fp32" else None
        return None if error is None else str(error)

    def _low(self, precision: str) -> PrecisionQuality:
        """The deployed model's evaluation in a low ``precision`` (empty where there is none)."""
        return (self.precision_quality or {}).get(precision) or {}

    def as_json(self) -> JsonObject:
        return {k: v for k, v in super().as_json().items() if v is not None}

    @classmethod
    def finished(cls, report: CellReport) -> CellResult:
        """The result of a cell that got to the end."""
        return cls.from_json({**report, "status": "ok"})

    @classmethod
    def failure(cls, status: Status, message: str, got: CellReport) -> CellResult:
        """A cell that failed, keeping of what it got to (``got``) only what identifies it."""
        kept = {k: v for k, v in got.items() if k in IDENTIFYING}
        return cls.from_json(kept | {"status": status, "message": message})

    def with_status(self, status: Status, message: str) -> CellResult:
        """The same cell with one measurement's outcome (its scores stay: the row shows what was measured)."""
        return dataclasses.replace(self, status=status, message=message)
