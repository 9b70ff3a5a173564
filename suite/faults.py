"""Fault injection for the integrity tests: kill the whole sweep at a named point, once.

``NORMBENCH_FAULT=POINT`` (with ``NORMBENCH_FAULT_MARK=FILE``) makes the first process that
reaches ``POINT`` create ``FILE`` and SIGKILL its whole process group: the sweep and every
worker die at once, as on a power cut or an out-of-memory kill. The mark file makes it happen
once, so the resumed sweep runs through. Unset (always, outside the tests), it does nothing.
Points: ``train`` (a cell's first optimizer step), ``timing`` and ``memory`` (a worker's
start), ``row-write`` (half-way through writing a row), ``between-rows`` (after a row, before
the next), ``report`` (before the leaderboard is written).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

POINTS = ("train", "timing", "memory", "row-write", "between-rows", "report")


def armed(point: str) -> bool:
    """True when this process should die at ``point`` now (the mark is taken atomically)."""
    if os.environ.get("NORMBENCH_FAULT") != point:
        return False
    mark = os.environ.get("NORMBENCH_FAULT_MARK")
    if not mark:
        return False
    try:
        fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def kill_now() -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


def point(name: str) -> None:
    """Die here when the tests armed ``name``."""
    if armed(name):
        kill_now()
