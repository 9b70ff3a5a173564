"""NVML helpers: which GPU we run on, its state, and a process's GPU memory.

NVML indices need not match CUDA's (``CUDA_VISIBLE_DEVICES`` reorders them), so the
handle is looked up by the device's UUID, then by PCI bus id, then by index.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any, NotRequired, TypedDict, TypeVar

import numpy as np
import torch

from suite.parts import GpuState, NvmlState, NvmlSummary

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but keep CPU-only use working without it
    pynvml = None

_REASONS = {  # bit flag name in pynvml -> short label
    "nvmlClocksEventReasonGpuIdle": "idle",
    "nvmlClocksEventReasonApplicationsClocksSetting": "app-clocks",
    "nvmlClocksEventReasonSwPowerCap": "sw-power-cap",
    "nvmlClocksEventReasonHwSlowdown": "hw-slowdown",
    "nvmlClocksEventReasonSyncBoost": "sync-boost",
    "nvmlClocksEventReasonSwThermalSlowdown": "sw-thermal",
    "nvmlClocksEventReasonHwThermalSlowdown": "hw-thermal",
    "nvmlClocksEventReasonHwPowerBrakeSlowdown": "hw-power-brake",
    "nvmlClocksEventReasonDisplayClockSetting": "display-clocks",
}
#: reasons that mean the clock was held below what the workload asked for
THROTTLING = {"sw-power-cap", "hw-slowdown", "sw-thermal", "hw-thermal", "hw-power-brake"}
_initialised = False
T = TypeVar("T")
N = TypeVar("N", int, float)


class GpuInfo(TypedDict):
    """The GPU's static facts (``device_info``): the GPU part of a row's ``provenance.device``.
    Without NVML only what PyTorch knows (name, capability, memory) is there."""
    cuda: str | None
    name: str
    uuid: NotRequired[str | None]
    capability: str | None
    total_memory_mb: float | None
    driver: NotRequired[str]
    max_sm_clock_mhz: NotRequired[int | None]
    power_limit_w: NotRequired[float | None]


def nvml_ok() -> bool:
    global _initialised
    if pynvml is None:
        return False
    if not _initialised:
        try:
            pynvml.nvmlInit()
            _initialised = True
        except pynvml.NVMLError:
            return False
    return True


def handle(cuda_index: int = 0) -> Any:
    """The NVML handle of CUDA device ``cuda_index`` (None when NVML is unavailable).

    In a process that has initialized CUDA the device's UUID (then PCI bus id) says which NVML
    device it is. A process that has not (the sweep's parent, gpu-check) must not initialize
    CUDA only to ask (it would hold a context on the GPU while workers time it), so there the
    ``CUDA_VISIBLE_DEVICES`` entry is read: a UUID, or an index in PCI order."""
    if not nvml_ok():
        return None
    attempts = []
    if torch.cuda.is_initialized():
        props: Any = torch.cuda.get_device_properties(cuda_index)  # pci_* fields are missing from torch's stubs
        uuid = getattr(props, "uuid", None)
        if uuid is not None:
            attempts.append(lambda: pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}"))
        if hasattr(props, "pci_bus_id"):
            bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
            attempts.append(lambda: pynvml.nvmlDeviceGetHandleByPciBusId(bus))
    entry = visible_entry(cuda_index)
    if entry is not None and not entry.isdigit():
        attempts.append(lambda: pynvml.nvmlDeviceGetHandleByUUID(entry))
    attempts.append(lambda: pynvml.nvmlDeviceGetHandleByIndex(int(entry) if entry and entry.isdigit() else cuda_index))
    for attempt in attempts:
        try:
            return attempt()
        except pynvml.NVMLError:
            continue
    return None


def visible_entry(cuda_index: int) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` entry of CUDA device ``cuda_index`` (None when unset or too short)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    return entries[cuda_index] if cuda_index < len(entries) else None


def device_info(cuda_index: int = 0) -> GpuInfo:
    """Static facts about the GPU: name, UUID, driver, CUDA version, capability, memory, max SM clock.

    Read through NVML, which creates no CUDA context, so the sweep's parent and gpu-check can
    record them without holding the GPU; from PyTorch only where NVML is missing."""
    h = handle(cuda_index)
    if h is None:
        return {"cuda": torch.version.cuda, "name": torch.cuda.get_device_name(cuda_index),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(cuda_index))),
                "total_memory_mb": torch.cuda.get_device_properties(cuda_index).total_memory / 2**20}
    capability = _try(lambda: pynvml.nvmlDeviceGetCudaComputeCapability(h))
    memory = _try(lambda: pynvml.nvmlDeviceGetMemoryInfo(h))
    return {
        "cuda": torch.version.cuda,
        "name": _str(pynvml.nvmlDeviceGetName(h)),
        "uuid": _try(lambda: _str(pynvml.nvmlDeviceGetUUID(h))),
        "capability": None if capability is None else ".".join(map(str, capability)),
        "total_memory_mb": None if memory is None else memory.total / 2**20,
        "driver": _str(pynvml.nvmlSystemGetDriverVersion()),
        "max_sm_clock_mhz": _try(lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
        "power_limit_w": _try(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000),
    }


def capability(cuda_index: int = 0) -> tuple[int, int]:
    """The GPU's compute capability, through NVML where it can (no CUDA context)."""
    h = handle(cuda_index)
    cap = None if h is None else _try(lambda: pynvml.nvmlDeviceGetCudaComputeCapability(h))
    return tuple(cap) if cap else torch.cuda.get_device_capability(cuda_index)


def gpu_state(cuda_index: int = 0) -> NvmlState | None:
    """Momentary state: SM clock, temperature, power, throttle reasons, other processes."""
    h = handle(cuda_index)
    if h is None:
        return None
    mask = _try(lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(h))
    reasons = [label for attr, label in _REASONS.items()
               if mask is not None and hasattr(pynvml, attr) and mask & getattr(pynvml, attr)]
    procs = _try(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(h)) or []
    others = sorted({p.pid for p in procs if p.pid != os.getpid()})
    return {
        "sm_clock_mhz": _try(lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
        "mem_clock_mhz": _try(lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM)),
        "temperature_c": _try(lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
        "power_w": _try(lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000),
        "throttle_reasons": reasons,
        "throttled": bool(set(reasons) & THROTTLING),
        "other_processes": len(others),
    }


def violation_ns(cuda_index: int = 0) -> dict[str, int] | None:
    """NVML's cumulative time (ns) the clocks were held down by the power and the thermal limit:
    counters, so a cap between two readings is seen even when no sample fell inside it."""
    h = handle(cuda_index)
    if h is None:
        return None
    out: dict[str, int] = {}
    for label, policy in (("power", "NVML_PERF_POLICY_POWER"), ("thermal", "NVML_PERF_POLICY_THERMAL")):
        value = _try(functools.partial(_violation_time, h, policy))
        if value is not None:
            out[label] = int(value)
    return out or None


def energy_counter(cuda_index: int = 0) -> tuple[Callable[[], int] | None, str]:
    """A reader of NVML's total energy counter of CUDA device ``cuda_index`` (millijoules since
    the driver was loaded; Volta or newer), read once here to see that it works; or None and
    why not (no pynvml, no NVML, no handle, the counter not supported)."""
    if pynvml is None:
        return None, "pynvml (nvidia-ml-py) is not installed: no NVML energy counter"
    if not nvml_ok():
        return None, "NVML could not be initialised (no NVIDIA driver loaded?): no energy counter"
    h = handle(cuda_index)
    if h is None:
        return None, f"NVML has no handle for CUDA device {cuda_index}: no energy counter"
    get = getattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", None)
    if get is None:
        return None, "this pynvml has no nvmlDeviceGetTotalEnergyConsumption"

    def read() -> int:
        return int(get(h))

    try:
        read()
    except pynvml.NVMLError as e:
        not_supported = getattr(pynvml, "NVMLError_NotSupported", ())
        hint = " (NVML has the counter on Volta or newer GPUs)" if isinstance(e, not_supported) else ""
        return None, f"nvmlDeviceGetTotalEnergyConsumption: {_str(e) or type(e).__name__}{hint}"
    return read, ""


def _violation_time(h: Any, policy: str) -> int:
    return pynvml.nvmlDeviceGetViolationStatus(h, getattr(pynvml, policy)).violationTime


class StateSampler:
    """The GPU's state while a group is timed: ``sample()`` is called at every round boundary
    (after the round's synchronize, outside the timed blocks), so the clock recorded is the loaded
    one and a throttle reason that holds only while the rounds run is seen; the power and thermal
    violation counters are read at both ends. ``read`` and ``counters`` are injectable for tests."""

    def __init__(self, read: Callable[[], NvmlState | None],
                 counters: Callable[[], dict[str, int] | None] = lambda: None) -> None:
        self.read, self.counters = read, counters
        self.samples: list[NvmlState] = []
        self.start = counters()

    def sample(self) -> None:
        state = self.read()
        if state:
            self.samples.append(state)

    def summary(self) -> NvmlSummary | None:
        """Clock, temperature and power over the samples, the union of throttle reasons, the share
        of samples throttled, other processes seen, and the violation time over the window."""
        end = self.counters()
        if not self.samples and end is None:
            return None
        clocks = [c for s in self.samples if (c := s.get("sm_clock_mhz")) is not None]
        reasons = sorted({r for s in self.samples for r in s.get("throttle_reasons") or []})
        throttled = [bool(s.get("throttled")) for s in self.samples]
        out: NvmlSummary = {
            "samples": len(self.samples),
            "sm_clock_mhz": None if not clocks else {"min": min(clocks), "median": float(np.median(clocks)),
                                                     "max": max(clocks)},
            "temperature_c_max": _max(s.get("temperature_c") for s in self.samples),
            "power_w_max": _max(s.get("power_w") for s in self.samples),
            "throttle_reasons": reasons, "throttled": any(throttled),
            "throttled_fraction": sum(throttled) / len(throttled) if throttled else 0.0,
            "other_processes": _max(s.get("other_processes") for s in self.samples) or 0,
        }
        if self.start is not None and end is not None:
            out["violation_ms"] = {k: (end[k] - self.start[k]) / 1e6 for k in end if k in self.start}
        return out


def _max(values: Iterable[N | None]) -> N | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def state_warnings(states: GpuState | None) -> list[str]:
    """Why a row's timing may be unfair, from its ``gpu_state`` {before, during, after}: a
    throttled clock (in a sample or by the violation counters during the rounds) or another
    process on the GPU."""
    out: list[str] = []
    if not states:
        return out
    during = states.get("during")
    violations = (during.get("violation_ms") if during else None) or {}
    capped = {k: v for k, v in violations.items() if v > 0}
    if capped:
        out.append("while throttled (" + ", ".join(f"{k} limit {v:.0f} ms" for k, v in sorted(capped.items())) +
                   " during the rounds)")
    for s in (states.get("before"), during, states.get("after")):
        if not s:
            continue
        if s.get("throttled"):
            reasons = sorted(set(s.get("throttle_reasons") or []) & THROTTLING)
            out.append(f"while throttled ({', '.join(reasons) or 'clock held down'})")
        if (s.get("other_processes") or 0) > 0:
            out.append(f"with {s['other_processes']} other process(es) on the GPU")
    return list(dict.fromkeys(out))


def state_flag(states: GpuState | None) -> str:
    """The leaderboard's short flag: 'throttled', 'shared GPU' or ''."""
    warnings = state_warnings(states)
    if any(w.startswith("while throttled") for w in warnings):
        return "throttled"
    return "shared GPU" if warnings else ""


def process_memory_mb(cuda_index: int = 0, pid: int | None = None) -> float | None:
    """GPU memory NVML attributes to process ``pid`` (default: this one), in MiB."""
    h = handle(cuda_index)
    if h is None:
        return None
    pid = os.getpid() if pid is None else pid
    procs = _try(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(h)) or []
    used = [p.usedGpuMemory for p in procs if p.pid == pid and p.usedGpuMemory is not None]
    return sum(used) / 2**20 if used else None


def _try(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a missing sensor must not fail a measurement
        return None


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
