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
from pathlib import Path
from typing import Any

import torch

from suite.measure.inputs import make_input
from suite.measure.prepare import prepare
from suite.measure.runtimes import PRECISIONS
from suite.measure.worker import run_worker


def build(spec: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(spec["device"])
    examples = [make_input(spec["input_spec"], b, device, PRECISIONS[spec["precision"]]) for b in spec["batches"]]
    prepared = prepare(Path(spec["model"]), device=device, runtime=spec["runtime"], precision=spec["precision"],
                       examples=examples, threads=spec.get("threads"))
    return {"build_s": prepared.built.build_s}


def main(spec_path: str) -> int:
    return run_worker(spec_path, build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
