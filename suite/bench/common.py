"""The setup every stand-alone benchmark shares: threads, allocator, device, provenance, report files."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from suite import jsonio
from suite.env import now_iso
from suite.measure.alloc import steady_malloc
from suite.measure.env import provenance
from suite.parts import Provenance


@dataclass(frozen=True, kw_only=True)
class BenchSetup:
    device: torch.device
    allocation: Mapping[str, object]   # what ``steady_malloc`` applied (recorded in the report)
    provenance: Provenance

    @property
    def where(self) -> str:
        """``GPU: <name>`` or ``CPU: <name>``: every report says which."""
        return f"{'GPU' if self.device.type == 'cuda' else 'CPU'}: {self.provenance['device'].get('name')}"

    @property
    def threads(self) -> int | None:
        return self.provenance["device"].get("torch_threads")


def setup(device_name: str, threads: int | None) -> BenchSetup:
    """Pin threads and the allocator before anything is built, and record where we run."""
    if threads:
        torch.set_num_threads(threads)
    allocation = steady_malloc()
    device = torch.device(device_name)
    return BenchSetup(device=device, allocation=allocation, provenance=provenance(device))


def report_dir(out: Path | None, results_dir: Path, kind: str, device_name: str) -> Path:
    """``out``, or ``results_dir/<kind>/<UTC time>-<device>``; created."""
    path = out or results_dir / kind / f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{device_name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_report(out: Path, md: str, data: Mapping[str, object], bench: BenchSetup, quiet: bool = False) -> None:
    """``report.md`` and ``report.json`` (``data``, a benchmark's own document, then allocation,
    time and provenance), then print them (``quiet``: a report rewritten as the benchmark goes,
    printed at the end only)."""
    jsonio.write_text_atomic(out / "report.md", md)
    jsonio.write_atomic(out / "report.json", {**data, "allocation": bench.allocation, "recorded_at": now_iso(),
                                              "provenance": bench.provenance})
    if not quiet:
        print(md)
        print(f"report: {out}")
