"""Where the suite lives and which version it is: repository root, suite version, git state, time."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
