"""One launcher for every worker: cells, timing groups, memory probes (sweeps and deploy-bench).

A worker is a module with ``main(spec_path) -> int`` that reads a JSON spec and writes its
result to a file the caller names; the launcher only starts it and reports how it ended.
Three modes:

- ``subprocess`` (default): ``python -m MODULE SPEC`` in a fresh interpreter, so memory is
  measured cleanly and a crash (segfault, OOM kill) cannot take the sweep down;
- ``torchrun``: the same under ``torch.distributed.run --nproc-per-node N`` (a DDP cell);
- ``inline``: ``MODULE.main(SPEC)`` in the sweep's own process, for stepping through a cell
  in a debugger and for fast tests. There is no isolation: a crash takes the sweep down,
  the timeout is not enforced, and the memory probe sees the whole sweep's process.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from suite.env import REPO_ROOT

MODES = ("subprocess", "torchrun", "inline")


@dataclass(frozen=True, kw_only=True)
class Launcher:
    mode: str = "subprocess"
    nproc: int = 1                  # processes per worker under torchrun
    timeout_s: float | None = None  # subprocess modes: kill the worker after this long

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"launch mode must be one of {MODES}, got {self.mode!r}")

    def run(self, module: str, spec_path: Path) -> str:
        """Run worker ``module`` on ``spec_path``; returns '' when it ended normally, else why not."""
        if self.mode == "inline":
            return _inline(module, spec_path)
        args = ["-m", module, str(spec_path)]
        if self.mode == "torchrun":
            args = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.nproc}", *args]
        return _subprocess(args, self.timeout_s)


def worker_launcher(cell: Launcher) -> Launcher:
    """Timing and memory workers run alone (never under torchrun), inline when cells are."""
    return Launcher(mode="inline" if cell.mode == "inline" else "subprocess", timeout_s=cell.timeout_s)


def _inline(module: str, spec_path: Path) -> str:
    try:
        code = importlib.import_module(module).main(str(spec_path))
    except Exception as e:  # noqa: BLE001 - a worker failure is reported, like a crashed process
        traceback.print_exc()
        return f"{type(e).__name__}: {e}".splitlines()[0][:500]
    return "" if not code else f"worker exited with status {code}"


def _subprocess(args: list[str], timeout: float | None) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run([sys.executable, *args], env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s (--cell-timeout)"
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        return f"process killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
    return "" if proc.returncode == 0 else f"process exited with status {proc.returncode}"
