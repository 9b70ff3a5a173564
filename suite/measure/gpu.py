"""NVML helpers: which GPU we run on, its state, and a process's GPU memory.

NVML indices need not match CUDA's (``CUDA_VISIBLE_DEVICES`` reorders them), so the
handle is looked up by the device's UUID, then by PCI bus id, then by index.
"""
from __future__ import annotations

import os
from typing import Any

import torch

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but keep CPU-only use working without it
    pynvml = None  # type: ignore[assignment]

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
    """The NVML handle of CUDA device ``cuda_index`` (None when NVML is unavailable)."""
    if not nvml_ok():
        return None
    props = torch.cuda.get_device_properties(cuda_index)
    attempts = []
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        attempts.append(lambda: pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}"))
    if hasattr(props, "pci_bus_id"):
        bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        attempts.append(lambda: pynvml.nvmlDeviceGetHandleByPciBusId(bus))
    attempts.append(lambda: pynvml.nvmlDeviceGetHandleByIndex(cuda_index))
    for attempt in attempts:
        try:
            return attempt()
        except pynvml.NVMLError:
            continue
    return None


def device_info(cuda_index: int = 0) -> dict[str, Any]:
    """Static facts about the GPU: name, driver, CUDA version, memory, max SM clock."""
    info: dict[str, Any] = {"name": torch.cuda.get_device_name(cuda_index),
                            "cuda": torch.version.cuda,
                            "capability": ".".join(map(str, torch.cuda.get_device_capability(cuda_index))),
                            "total_memory_mb": torch.cuda.get_device_properties(cuda_index).total_memory / 2**20}
    h = handle(cuda_index)
    if h is not None:
        info["driver"] = _str(pynvml.nvmlSystemGetDriverVersion())
        info["max_sm_clock_mhz"] = _try(lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM))
        info["power_limit_w"] = _try(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000)
    return info


def gpu_state(cuda_index: int = 0) -> dict[str, Any] | None:
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


def state_warnings(states: dict[str, Any] | None) -> list[str]:
    """Why a row's timing may be unfair, from its ``gpu_state`` {before, after}: a throttled
    clock or another process on the GPU at either end of the measurement."""
    out: list[str] = []
    for s in [(states or {}).get(k) for k in ("before", "after")]:
        if not s:
            continue
        if s.get("throttled"):
            reasons = sorted(set(s.get("throttle_reasons") or []) & THROTTLING)
            out.append(f"while throttled ({', '.join(reasons) or 'clock held down'})")
        if (s.get("other_processes") or 0) > 0:
            out.append(f"with {s['other_processes']} other process(es) on the GPU")
    return list(dict.fromkeys(out))


def state_flag(states: dict[str, Any] | None) -> str:
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


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a missing sensor must not fail a measurement
        return None


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
