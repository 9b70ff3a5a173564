"""What a cell process reports (its ``result.json``), typed: ``CellResult``.

The cell fills it as it goes, so a cell that fails still says what it got to (its data, profile,
versions); the runner reads it back (``from_json``, which also reads the ``result.json`` of
earlier versions: the field names are the same) and turns it, with the group's timing and the
model's memory, into rows (``suite.sweep.record``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from suite.measure.jobs import Message

#: what a failed cell keeps from what it got to: what identifies it, not its scores
IDENTIFYING = ("dataset", "profile_config", "versions", "distributed")


@dataclass(frozen=True, kw_only=True)
class CellResult(Message):
    status: str                                    # ok, error, diverged, not-applicable
    message: str = ""
    cell_id: str | None = None                     # ``suite.sweep.identity.cell_id`` of what was trained
    started_at: str | None = None
    finished_at: str | None = None
    cell_seconds: float = 0.0
    profile_config: dict[str, Any] | None = None   # the profile as run
    versions: dict[str, Any] | None = None
    distributed: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None          # the trained model's evaluation (fp32)
    precision_quality: dict[str, dict[str, Any]] | None = None   # the deployed model's, per low precision
    deploy: dict[str, Any] | None = None           # the deploy check
    input_spec: dict[str, Any] | None = None       # what timing and memory feed the deployed model
    primary_metric: str | None = None
    metric_better: dict[str, str] | None = None
    throughput_batch: int | None = None            # the profile's, as the cell ran (kept for readers of result.json)
    timing_s_per_model: float | None = None
    throughput_unit: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def quality_in(self, precision: str) -> dict[str, Any]:
        """The quality a row of this precision reports: fp32's, or the deployed model's in ``precision``."""
        if precision == "fp32":
            return dict(self.quality or {})
        return dict((self.precision_quality or {}).get(precision) or {})

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().as_json().items() if v is not None}

    @classmethod
    def failure(cls, status: str, message: str, got: dict[str, Any]) -> CellResult:
        """A cell that failed, keeping of what it got to (``got``) only what identifies it."""
        return cls(status=status, message=message, **{k: got[k] for k in IDENTIFYING if k in got})

    def with_status(self, status: str, message: str) -> CellResult:
        """The same cell with one measurement's outcome (its scores stay: the row shows what was measured)."""
        return dataclasses.replace(self, status=status, message=message)
