"""``cudagraphs``: ``torch.compile(mode="reduce-overhead")``, inductor with CUDA-graph replay.

CUDA only: on a CPU device the cell's row is ``not-applicable``. Launch overhead is what CUDA
graphs remove, so this runtime matters most for small models at batch 1.
"""
from __future__ import annotations

import torch

from suite.measure.runtimes import register_runtime
from suite.measure.runtimes.compile import Compile


@register_runtime("cudagraphs")
class CudaGraphs(Compile):
    """CUDA graphs through torch.compile(mode="reduce-overhead"); CUDA only."""

    mode = "reduce-overhead"
    warm_calls = 3
    gpu_memory = "reserved"  # replays write into the graphs' private pool: held, not counted as allocated

    @classmethod
    def unsupported(cls, device: torch.device, precision: str) -> str | None:
        if device.type != "cuda":
            return "cudagraphs needs a CUDA device (CUDA graphs capture GPU kernel launches)"
        return None
