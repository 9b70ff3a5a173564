"""One launcher for every worker: cells, timing groups, memory probes (sweeps and deploy-bench).

A worker is a module with ``main(spec_path) -> int`` that reads a JSON spec and writes its
result to a file the caller names; the launcher only starts it and reports how it ended.
Three modes:

- ``subprocess`` (default): the worker runs in a process of its own, so memory is measured
  cleanly and a crash (segfault, OOM kill) cannot take the sweep down. Each such process is
  forked from a server (``multiprocessing``'s forkserver) that imported torch, torchvision,
  timm, transformers and scipy.stats once, and never ran an operator, CUDA included: a sweep starts dozens
  of workers, and importing those afresh costs 5-9 s each on a small CPU. The worker gets the
  sweep's environment as it is at launch. Where forkserver does not exist (Windows), or
  ``NORMBENCH_FRESH_WORKERS=1`` is set, each worker is ``python -m MODULE SPEC`` instead;
- ``torchrun``: the same under ``torch.distributed.run --nproc-per-node N`` (a DDP cell);
- ``inline``: ``MODULE.main(SPEC)`` in the sweep's own process, for stepping through a cell
  in a debugger and for fast tests. There is no isolation: a crash takes the sweep down,
  the timeout is not enforced, and the memory probe sees the whole sweep's process.
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from suite.env import REPO_ROOT
from suite.parts import LauncherName

MODES = ("subprocess", "torchrun", "inline")
#: what the fork server imports once; a module missing here is skipped (the worker imports it). None
#: of them initializes CUDA on import (checked: no device query during these imports), which matters:
#: a CUDA context made in the server would be unusable in every forked worker
PRELOAD = ("torch", "torchvision", "timm", "transformers", "scipy.stats")
FRESH_ENV = "NORMBENCH_FRESH_WORKERS"


@dataclass(frozen=True, kw_only=True)
class Launcher:
    mode: LauncherName = "subprocess"
    nproc: int = 1                  # processes per worker under torchrun
    timeout_s: float | None = None  # subprocess modes: kill the worker after this long
    env: tuple[tuple[str, str], ...] = ()   # set in the worker's environment (e.g. the GPU it is pinned to)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"launch mode must be one of {MODES}, got {self.mode!r}")

    def run(self, module: str, spec_path: Path) -> str:
        """Run worker ``module`` on ``spec_path``; returns '' when it ended normally, else why not."""
        if self.mode == "inline":
            return _inline(module, spec_path)
        env = _worker_env(dict(self.env))
        if self.mode == "subprocess" and _forkserver_usable():
            return _forked(module, spec_path, self.timeout_s, env)
        args = ["-m", module, str(spec_path)]
        if self.mode == "torchrun":
            args = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.nproc}", *args]
        return _subprocess(args, self.timeout_s, env)


def worker_launcher(cell: Launcher, env: dict[str, str] | None = None) -> Launcher:
    """Timing and memory workers run alone (never under torchrun), inline when cells are; ``env``:
    what their environment adds (the GPU a measurement was given)."""
    return Launcher(mode="inline" if cell.mode == "inline" else "subprocess", timeout_s=cell.timeout_s,
                    env=tuple(sorted((env or {}).items())))


def _inline(module: str, spec_path: Path) -> str:
    try:
        code = importlib.import_module(module).main(str(spec_path))
    except Exception as e:  # noqa: BLE001 - a worker failure is reported, like a crashed process
        traceback.print_exc()
        return f"{type(e).__name__}: {e}".splitlines()[0][:500]
    return "" if not code else f"worker exited with status {code}"


def _worker_env(extra: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def _subprocess(args: list[str], timeout: float | None, env: dict[str, str]) -> str:
    try:
        proc = subprocess.run([sys.executable, *args], env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _timed_out(timeout)
    return _ended(proc.returncode)


def start_server() -> None:
    """Start the fork server now: it imports ``PRELOAD`` while the caller goes on with its own start-up."""
    if _forkserver_usable():
        from multiprocessing import forkserver
        _server_context()
        forkserver.ensure_running()


def _server_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context, its preload set (read when the server starts: here or at the first worker)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def _forkserver_usable() -> bool:
    return os.environ.get(FRESH_ENV, "") in ("", "0") and "forkserver" in multiprocessing.get_all_start_methods()


def _forked(module: str, spec_path: Path, timeout: float | None, env: dict[str, str]) -> str:
    proc = _server_context().Process(target=_forked_main, args=(module, str(spec_path), env), name=module)
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:  # still running at the deadline
        proc.kill()
        proc.join()
        return _timed_out(timeout)
    return _ended(proc.exitcode)


def _forked_main(module: str, spec_path: str, env: dict[str, str]) -> None:
    """The worker's entry in a process forked from the server: the sweep's environment, then main."""
    os.environ.clear()
    os.environ.update(env)
    # PYTHONPATH as it is now, not as it was when the server started: what a fresh interpreter would see
    for entry in reversed([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    sys.argv = [module, spec_path]
    sys.exit(importlib.import_module(module).main(spec_path) or 0)


def _timed_out(timeout: float | None) -> str:
    return f"timed out after {timeout or 0:.0f} s (--cell-timeout)"


def _ended(code: int) -> str:
    if code < 0:
        sig = signal.Signals(-code).name
        return f"process killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
    return "" if code == 0 else f"process exited with status {code}"
