"""``compile``: ``torch.compile`` with the inductor backend, default mode, static shapes.

Each timed shape (batch 1 and the throughput batch) is compiled while the runtime is built,
so compilation is recorded in ``build_s`` and never lands in a timed iteration. Dynamo's
caches are cleared once before the first model of a process; several deployed models of one
group share code objects (their classes' ``forward``), so the recompile limit is raised for
the group instead of resetting between models, which would drop the models compiled earlier.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import torch

from suite.measure.runtimes import Built, Runtime, register_runtime
from suite.parts import JsonObject

RECOMPILE_LIMIT = 64
_reset_done = False


@register_runtime("compile")
class Compile(Runtime):
    """torch.compile (inductor, default mode): compile time recorded apart, never in latency."""

    mode: str | None = None
    build_cache = True  # inductor's FX-graph and kernel caches live on disk (TORCHINDUCTOR_CACHE_DIR)
    warm_calls = 1  # calls per shape while building (CUDA graphs record on a later call than the first)

    @classmethod
    def build(cls, model: torch.nn.Module, examples: list[Any], *, device: torch.device, precision: str,
              threads: int | None) -> Built:
        import torch._dynamo as dynamo
        global _reset_done
        if device.type == "cpu":  # inductor's CPU build warns that no CUDA runtime exists: expected here
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        if not _reset_done:
            dynamo.reset()
            _reset_done = True
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo.config, name):
                setattr(dynamo.config, name, max(getattr(dynamo.config, name), RECOMPILE_LIMIT))
        compiled = torch.compile(model, mode=cls.mode, dynamic=False)
        frames_before = _compiled_frames()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in examples:  # one compilation per shape, before any timing
                for _ in range(cls.warm_calls):
                    compiled(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        build_s = time.perf_counter() - t0
        info: JsonObject = {"torch": torch.__version__, "backend": "inductor", "mode": cls.mode or "default",
                            "dynamic": False, "frames_compiled": _compiled_frames() - frames_before}
        return Built(compiled, build_s, info)


def _compiled_frames() -> int:
    from torch._dynamo.utils import counters
    return int(counters["stats"].get("unique_graphs", 0))
