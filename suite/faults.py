"""Fault injection for the integrity tests: kill the whole sweep at a named point, once.

``NORMBENCH_FAULT=POINT`` (with ``NORMBENCH_FAULT_MARK=FILE``) makes the first process that
reaches ``POINT`` create ``FILE`` and SIGKILL its whole process group: the sweep and every
worker die at once, as on a power cut or an out-of-memory kill. The mark file makes it happen
once, so the resumed sweep runs through. Unset (always, outside the tests), it does nothing.
Points: ``train`` (a cell's first optimizer step), ``timing`` and ``memory`` (a worker's
start), ``row-write`` (half-way through writing a row), ``between-rows`` (after a row, before
the next), ``report`` (before the leaderboard is written). ``POINT@N`` dies at the N-th time
one process reaches the point (e.g. ``between-rows@3``: after the third row).

``NORMBENCH_PACE_S=SECONDS`` makes every optimizer step of a cell take that much longer, so a
test can stop a cell's job while it trains (a preemption, a requeue); it changes no result.
"""
from __future__ import annotations

import os
import signal
import time

POINTS = ("train", "timing", "memory", "row-write", "between-rows", "report")


_hits: dict[str, int] = {}


def armed(point: str) -> bool:
    """True when this process should die at ``point`` now (the mark is taken atomically)."""
    want, _, nth = os.environ.get("NORMBENCH_FAULT", "").partition("@")
    if want != point:
        return False
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] < int(nth or 1):
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


def pace() -> None:
    """Wait ``NORMBENCH_PACE_S`` seconds (the tests' slow training step); nothing when unset."""
    seconds = os.environ.get("NORMBENCH_PACE_S")
    if seconds:
        time.sleep(float(seconds))
