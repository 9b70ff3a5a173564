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
- ``torchrun``: a DDP cell under ``torch.distributed.run --nproc-per-node N``, its agent forked from
  the server as a worker is (its ranks are fresh interpreters it starts), or ``python -m
  torch.distributed.run`` where workers are fresh;
- ``inline``: ``MODULE.main(SPEC)`` in the sweep's own process, for stepping through a cell
  in a debugger and for fast tests. There is no isolation: a crash takes the sweep down,
  the timeout is not enforced, and the memory probe sees the whole sweep's process.
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        torchrun = ["--standalone", f"--nproc-per-node={self.nproc}", "-m", module, str(spec_path)]
        if _forkserver_usable():
            if self.mode == "torchrun":   # torchrun's agent forked too; it starts the ranks as fresh interpreters
                return _forked(_forked_torchrun, (torchrun, env), "torch.distributed.run", self.timeout_s)
            return _forked(_forked_main, (module, str(spec_path), env), module, self.timeout_s)
        args = ["-m", "torch.distributed.run", *torchrun] if self.mode == "torchrun" else ["-m", module, str(spec_path)]
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


class ServerFirst:
    """``fn(*args, **kwargs)`` for a job of its own (a SLURM measurement or final job), which starts the
    fork server before anything else: the call is held pickled, so unpickling this object imports only
    this module, and the server's imports of ``PRELOAD`` run beside the job's own imports of the suite
    (unpickling the call), not after them. On a node with cores to spare that is several seconds
    sooner to the first worker; the CPU spent is the same."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.call = pickle.dumps((fn, args, kwargs))

    def __call__(self) -> Any:
        start_server()
        fn, args, kwargs = pickle.loads(self.call)
        return fn(*args, **kwargs)


def _server_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context, its preload set (read when the server starts: here or at the first worker)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def _forkserver_usable() -> bool:
    return os.environ.get(FRESH_ENV, "") in ("", "0") and "forkserver" in multiprocessing.get_all_start_methods()


def _forked(target: Callable[..., None], args: tuple[Any, ...], name: str, timeout: float | None) -> str:
    proc = _server_context().Process(target=target, args=args, name=name)
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:  # still running at the deadline
        proc.kill()
        proc.join()
        return _timed_out(timeout)
    return _ended(proc.exitcode)


def _enter(env: dict[str, str]) -> None:
    """A process forked from the server takes the sweep's environment as it is now."""
    os.environ.clear()
    os.environ.update(env)
    # PYTHONPATH as it is now, not as it was when the server started: what a fresh interpreter would see
    for entry in reversed([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def _forked_main(module: str, spec_path: str, env: dict[str, str]) -> None:
    """The worker's entry in a process forked from the server: the sweep's environment, then main."""
    _enter(env)
    sys.argv = [module, spec_path]
    sys.exit(importlib.import_module(module).main(spec_path) or 0)


def _forked_torchrun(args: list[str], env: dict[str, str]) -> None:
    """torchrun's agent in a process forked from the server (torch is imported there already; a fresh
    agent spends seconds importing it before it starts a rank). It ends as ``python -m
    torch.distributed.run`` does: status 0, or 1 with the failed ranks' summary where one failed."""
    _enter(env)
    from torch.distributed.run import main
    sys.argv = ["torch.distributed.run", *args]
    main(args)


def _timed_out(timeout: float | None) -> str:
    return f"timed out after {timeout or 0:.0f} s (--cell-timeout)"


def _ended(code: int) -> str:
    if code < 0:
        sig = signal.Signals(-code).name
        return f"process killed by {sig}" + (" (out of memory?)" if sig == "SIGKILL" else "")
    return "" if code == 0 else f"process exited with status {code}"
