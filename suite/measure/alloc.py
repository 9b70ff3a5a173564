"""Steady CPU memory allocation for timing processes (glibc ``mallopt``).

With default glibc settings, freeing the multi-megabyte activations of a large batch hands
memory back to the kernel (trim, munmap) and the next forward page-faults it in again; how
often that happens depends on each model's exact allocation sequence, which biased batch-32
comparisons on the development machine by up to 20%. Timing processes therefore pin the mmap
threshold at glibc's maximum (32 MiB) and keep freed memory in the heap (trim threshold
1 GiB). Peak memory is measured in separate processes with the defaults.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import NotRequired, TypedDict

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30


class MallocSettings(TypedDict):
    """What ``steady_malloc`` applied: recorded in the row's ``timing_config`` beside the timing keywords."""
    malloc: str
    mmap_threshold: NotRequired[int]
    trim_threshold: NotRequired[int]


def steady_malloc() -> MallocSettings:
    """Apply the settings where glibc is present; returns what was applied (recorded in rows)."""
    if not sys.platform.startswith("linux"):
        return {"malloc": "default (not glibc)"}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return {"malloc": "default (mallopt unavailable)"}
    return {"malloc": "glibc mallopt", "mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
