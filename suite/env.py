"""Provenance: everything that can change a number, recorded in every row."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

SCHEMA_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("torch", "torchvision", "timm", "transformers", "numpy", "nvidia-ml-py")


def suite_version() -> str:
    try:
        return importlib.metadata.version("normbench")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device: torch.device) -> dict[str, Any]:
    """What the measurements ran on: CPU model and threads, or the GPU and its driver."""
    desc: dict[str, Any] = {"type": device.type, "cpu": cpu_name(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        from suite.gpu import device_info
        desc.update(device_info(device.index or 0))
    else:
        desc["name"] = desc["cpu"]
    return desc


def provenance(device: torch.device) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "suite_version": suite_version(),
        "git": git_state(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device_description(device),
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
