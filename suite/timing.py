"""Interleaved timing of a group of deployed models: ``python -m suite.timing SPEC.json``.

A group is the variants of one task and seed; they are loaded into one process and timed
in rounds (see ``suite.measure``), so each variant's ratio to the baseline is paired.
Writes ``timing.json`` with one entry per model plus the device state before and after.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
from tqdm import tqdm

from suite import jsonio
from suite.alloc import steady_malloc
from suite.env import now_iso
from suite.measure import TimingConfig, make_input, time_interleaved


def run_group(spec: dict[str, Any]) -> dict[str, Any]:
    malloc = steady_malloc()
    device = torch.device(spec["device"])
    models = {name: torch.load(path, map_location=device, weights_only=False).eval()
              for name, path in spec["models"].items()}
    cfg = TimingConfig(**spec["timing"])
    state_before = _gpu_state(device)
    bar = tqdm(desc=f"timing {len(models)} models", unit="round", leave=False, mininterval=1.0)
    timings = time_interleaved(models, lambda b: make_input(spec["input_spec"], b, device), cfg, device,
                               baseline=spec.get("baseline"),
                               progress=lambda r, s: bar.update(1))
    bar.close()
    return {"started_at": spec.get("started_at") or now_iso(), "config": {**spec["timing"], **malloc},
            "gpu_state": {"before": state_before, "after": _gpu_state(device)},
            "models": {n: t.as_row(spec["unit"]) for n, t in timings.items()}}


def _gpu_state(device: torch.device) -> dict[str, Any] | None:
    if device.type != "cuda":
        return None
    from suite.gpu import gpu_state
    return gpu_state(device.index or 0)


def main(spec_path: str) -> int:
    spec = jsonio.read(spec_path)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    jsonio.write_atomic(spec["out"], run_group(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
