"""The frame of a measurement worker: read the JSON spec, pin threads, run, write the result.

A failure inside the work is written as ``{"error": "Type: message"}`` (the traceback goes to
stderr), so the sweep records it in the row and goes on.
"""
from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from suite import jsonio


def run_worker(spec_path: str, work: Callable[[Mapping[str, object]], Mapping[str, object]]) -> int:
    """Run ``work`` on the job at ``spec_path`` (a JSON object with ``out`` and optional ``threads``;
    ``work`` reads the rest, e.g. through ``suite.measure.jobs.Message.from_json``)."""
    spec: Mapping[str, object] = jsonio.read(Path(spec_path))
    threads = spec.get("threads")
    if isinstance(threads, int) and threads:
        torch.set_num_threads(threads)
    try:
        result = work(spec)
    except Exception as e:  # noqa: BLE001 - reported in the row, the sweep goes on
        traceback.print_exc()
        result = {"error": describe_error(e)}
    jsonio.write_atomic(Path(str(spec["out"])), result)
    return 0


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe_error(e: BaseException, limit: int = 400) -> str:
    """One line: the exception's type and first line, and its root cause when it wraps one
    (an export error wraps what torch.export tripped over); terminal colours removed."""
    def line(x: BaseException) -> str:
        text = ANSI.sub("", str(x)).strip().splitlines()
        return f"{type(x).__name__}: {text[0] if text else ''}".strip()

    root = e
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    out = line(e) if root is e else f"{line(e)} (cause: {line(root)})"
    return out[:limit]
