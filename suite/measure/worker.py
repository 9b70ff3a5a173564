"""The frame of a measurement worker: read the JSON spec, pin threads, run, write the result.

A failure inside the work is written as ``{"error": "Type: message"}`` (the traceback goes to
stderr), so the sweep records it in the row and goes on.
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import torch

from suite import jsonio


def run_worker(spec_path: str, work: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    spec = jsonio.read(spec_path)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    try:
        result = work(spec)
    except Exception as e:  # noqa: BLE001 - reported in the row, the sweep goes on
        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
    jsonio.write_atomic(spec["out"], result)
    return 0
