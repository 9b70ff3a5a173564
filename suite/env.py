"""Where the suite lives and which version it is: repository root, suite version, git state, time."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from suite.errors import UsageError
from suite.parts import GitState, JobInfo

REPO_ROOT = Path(__file__).resolve().parent.parent


def suite_version() -> str:
    try:
        return importlib.metadata.version("normbench")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def git_state() -> GitState:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def interactive(stream: object | None = None) -> bool:
    """Whether progress may be drawn as bars: only on a terminal. In a log file or a CI log a bar's
    carriage-return frames pile up on one line, so there progress is one line per finished step."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def resolve_device(name: str, check: bool = True) -> str:
    """``--device``: ``auto`` is ``cuda`` where CUDA is available, else ``cpu``; ``cuda`` is checked
    (unless ``check`` is False: the sweep checks it once it knows the work runs here)."""
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if check and name == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda, but CUDA is not available here (torch {torch.__version__}, "
                         f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or --device auto")
    return name


#: a worker the GPU pool pinned: its GPUs as the sweep numbers them (``--gpus``); its CUDA index is 0, 1, ...
GPUS_ENV = "NORMBENCH_GPUS"


def visible_gpus() -> int:
    """CUDA devices this process sees (within ``CUDA_VISIBLE_DEVICES``), without making a CUDA context."""
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def job_info() -> JobInfo | None:
    """The scheduler job this process runs in, from SLURM's environment (None outside one)."""
    import os
    import socket
    job = os.environ.get("SLURM_JOB_ID")
    if job is None:
        return None
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return {"scheduler": "slurm", "job_id": f"{array_job}_{task}" if array_job and task else job,
            "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
