"""Energy per inference from NVML's total energy counter (``nvmlDeviceGetTotalEnergyConsumption``).

The counter is the GPU board's energy in millijoules since the driver was loaded (Volta or
newer) and it moves in steps: the driver updates it every 20-100 ms. So a variant's energy is
never read around one short block. After a group's interleaved rounds, the energy pass runs
each variant alone (the interleaved rounds alternate variants iteration by iteration, so their
energy could not be told apart) in *windows*: back-to-back batch-1 calls, the counter polled
between calls, until the window has lasted at least ``min_s`` and the counter has moved
``min_updates`` times. The window's power is the counter's change between its first and its
last observed update over the time between them (whole update periods, so the step size does
not enter), and its energy per inference that power times the window's wall time (from one
synchronize to the next) over its calls. A window where the counter did not advance at least
twice is discarded and flagged; two such windows in a row end the pass (the counter is stuck).
Windows rotate over the variants like the rounds do; per variant, ``ratio_ci`` (the helper the
latency ratio uses) gives the center and the 95% interval over its windows, and the ratio to
the baseline is paired per energy round.

The figure is whole-board energy while the model runs, idle and static draw included
(``idle_included``); nothing is subtracted. ``unsupported``/``invalid`` with a reason stand
where there is no figure, never 0.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from suite.measure.interleave import ratio_ci
from suite.parts import Energy, Ratio

#: windows per variant: at least this many (an interval needs three) ...
MIN_WINDOWS = 3
#: ... and at most this many, one per this many seconds of the group's per-variant budget
MAX_WINDOWS = 8
SECONDS_PER_WINDOW = 2.0


def unsupported(reason: str) -> Energy:
    """The energy part where there is no counter (a CPU run, a GPU older than Volta, no NVML)."""
    return {"status": "unsupported", "reason": reason}


def windows_for(per_model_s: float) -> int:
    """Energy windows per variant for a per-variant timing budget: 3 up to 6 s, one more per 2 s, at most 8."""
    return max(MIN_WINDOWS, min(MAX_WINDOWS, int(per_model_s // SECONDS_PER_WINDOW)))


@dataclass
class Window:
    """One variant's energy window: its calls, wall time, counter updates and, when usable, power."""
    iters: int
    seconds: float
    updates: int
    power_w: float | None = None      # counter change between the first and last update / their time
    update_s: float | None = None     # mean time between the updates seen
    flag: str | None = None           # why the window was discarded

    @property
    def mj_per_inference(self) -> float | None:
        if self.power_w is None or self.iters == 0:
            return None
        return self.power_w * self.seconds / self.iters * 1e3


@dataclass
class EnergyMeter:
    """Windows of one callable against an energy counter. ``read`` returns the counter in mJ,
    ``sync`` waits for the device (``torch.cuda.synchronize``), ``clock`` is in seconds: all
    injectable, so a fake counter and a fake clock can stand in for the GPU in tests."""
    read: Callable[[], int]
    sync: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.perf_counter
    min_s: float = 0.25        # a window lasts at least this long ...
    min_updates: int = 5       # ... and until the counter has moved this often (4 whole update periods)
    max_s: float = 1.5         # ... but no longer than this (then flagged when it moved less than twice)
    poll_s: float = 0.0005     # the counter is read between calls at most this often

    def windows(self, per_model_s: float) -> int:
        """Energy windows per variant for the group's per-variant timing budget (``windows_for``)."""
        return windows_for(per_model_s)

    def window(self, fn: Callable[[], Any]) -> Window:
        self.sync()
        t0 = polled = self.clock()
        last = self.read()
        changes: list[tuple[float, int]] = []
        iters, backwards = 0, False
        while True:
            fn()
            iters += 1
            now = self.clock()
            if now - polled >= self.poll_s:
                polled = now
                value = self.read()
                if value < last:
                    backwards = True   # a driver reload resets it: nothing before is comparable
                    changes = []
                if value != last:
                    changes.append((now, value))
                    last = value
            elapsed = now - t0
            if elapsed >= self.max_s or (elapsed >= self.min_s and len(changes) >= self.min_updates):
                break
        self.sync()
        seconds = self.clock() - t0
        w = Window(iters, seconds, len(changes))
        if len(changes) < 2 or changes[-1][0] <= changes[0][0]:
            w.flag = ("the counter went backwards" if backwards else
                      "the counter did not advance" if not changes else "the counter advanced only once") + \
                f" in {seconds:.2f} s"
            return w
        (ta, ea), (tb, eb) = changes[0], changes[-1]
        w.power_w = (eb - ea) / (tb - ta) / 1e3
        w.update_s = (tb - ta) / (len(changes) - 1)
        return w

    def measure(self, calls: Mapping[str, Callable[[], Any]], windows: int,
                baseline: str | None = None) -> dict[str, Energy]:
        """``windows`` energy rounds over ``calls`` (one window per variant, the order rotated each
        round), summarized per variant; stops early when the counter is stuck. A failure here (the
        counter unreadable mid-pass) makes every variant's energy ``invalid``, never the group's timing."""
        names = list(calls)
        got: dict[str, list[Window]] = {n: [] for n in names}
        stuck = 0
        try:
            for r in range(windows):
                for n in names[r % len(names):] + names[:r % len(names)]:
                    w = self.window(calls[n])
                    got[n].append(w)
                    stuck = stuck + 1 if w.updates == 0 else 0
                    if stuck >= 2:
                        return summarize(got, baseline, stopped="the counter did not advance in two windows in a row")
        except Exception as e:  # noqa: BLE001 - the energy pass must not cost the group its latency
            return {n: {"status": "invalid", "reason": f"the energy pass failed: {type(e).__name__}: {e}"}
                    for n in names}
        return summarize(got, baseline)


def summarize(got: Mapping[str, list[Window]], baseline: str | None = None, stopped: str = "") -> dict[str, Energy]:
    """Each variant's energy part from its windows (in round order)."""
    out: dict[str, Energy] = {}
    for n, ws in got.items():
        valid = [w for w in ws if w.mj_per_inference is not None]
        mj = [x for w in valid if (x := w.mj_per_inference) is not None]
        flags = list(dict.fromkeys(f for f in [*(w.flag for w in ws), stopped] if f))
        if not valid:
            why = "; ".join(flags) or "none measured"
            out[n] = {"status": "invalid", "reason": f"no usable energy window: {why}", "windows": 0,
                      "flagged": len(ws), "flags": flags}
            continue
        ci = ratio_ci(np.log(mj))
        seconds = sum(w.seconds for w in valid)
        inferences = sum(w.iters for w in valid)
        updates = [w.update_s for w in valid if w.update_s is not None]
        out[n] = {
            "status": "ok", "mj_per_inference": ci.value, "lo": _finite(ci.lo), "hi": _finite(ci.hi),
            "power_w": sum((w.power_w or 0.0) * w.seconds for w in valid) / seconds,
            "ms_per_inference": seconds / inferences * 1e3, "batch": 1, "windows": len(valid),
            "flagged": len(ws) - len(valid), "flags": flags, "inferences": inferences, "seconds": seconds,
            "update_ms": float(np.median(updates)) * 1e3 if updates else None,
            "window_mj": [None if (x := w.mj_per_inference) is None else round(x, 6) for w in ws],
            "idle_included": True, "ratio": None,
        }
    if baseline is not None and baseline in got:
        for n, ws in got.items():
            part = out[n]
            if part["status"] == "ok":
                part["ratio"] = paired_ratio(ws, got[baseline], baseline)
    return out


def paired_ratio(ws: list[Window], base: list[Window], baseline: str) -> Ratio | None:
    """Energy per inference over the baseline's, from the log ratios of the windows of the same round."""
    logs = [math.log(a) - math.log(b) for w, v in zip(ws, base)
            if (a := w.mj_per_inference) is not None and (b := v.mj_per_inference) is not None]
    if not logs:
        return None
    ci = ratio_ci(logs, baseline=baseline)
    return {"value": _finite(ci.value), "lo": _finite(ci.lo), "hi": _finite(ci.hi), "rounds": ci.rounds,
            "baseline": baseline}


def meter_for(device: torch.device) -> tuple[EnergyMeter | None, str]:
    """The energy meter of ``device`` (None on a CPU, or where NVML has no counter) and why not."""
    if device.type != "cuda":
        return None, (f"{device.type} run: energy per inference is read from NVML's GPU energy counter, "
                      "which only CUDA devices have")
    from suite.measure.gpu import energy_counter
    read, why = energy_counter(device.index or 0)
    if read is None:
        return None, why
    return EnergyMeter(read, sync=lambda: torch.cuda.synchronize(device)), ""


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
