"""Build one deployed model under a runtime and exit: warms the runtime's on-disk cache.

A worker of ``suite.launch`` (``python -m suite.measure.build_worker SPEC.json``). Compiling
runtimes (``Runtime.build_cache``: inductor's FX-graph and kernel caches) spend most of a
group's build in code generation that a later build of the same graph, in another process,
reads back from disk. ``deploy-bench --build-jobs N`` runs N of these side by side before a
timing group, so the timing worker, which must build every model itself in one process, finds
the work done. Nothing is timed here; the worker writes ``{"build_s": ...}`` (or ``{"error": ...}``).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from suite.measure.inputs import make_input
from suite.measure.jobs import Message
from suite.measure.prepare import prepare
from suite.measure.runtimes import PRECISIONS
from suite.measure.worker import run_worker
from suite.parts import InputSpec


@dataclass(frozen=True, kw_only=True)
class BuildJob(Message):
    """What ``deploy-bench`` asks of one build worker: build ``model`` for these batch sizes."""
    model: str                             # the deployed model's folder
    input_spec: InputSpec
    batches: list[int]
    device: str
    runtime: str
    precision: str
    out: str
    threads: int | None = None


def build(spec: Mapping[str, object]) -> dict[str, float]:
    job = BuildJob.from_json(spec)
    device = torch.device(job.device)
    examples = [make_input(job.input_spec, b, device, PRECISIONS[job.precision]) for b in job.batches]
    prepared = prepare(Path(job.model), device=device, runtime=job.runtime, precision=job.precision,
                       examples=examples, threads=job.threads)
    return {"build_s": prepared.built.build_s}


def main(spec_path: str) -> int:
    return run_worker(spec_path, build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
