"""A deployed model made ready for measurement under one runtime and precision.

Shared by the timing and memory workers and by ``deploy-bench``: read the model back from its
weights and build description (``suite.models.artifact``), take the module that is timed (the
model, or ``ids -> logits`` for a language model), cast it to the precision, and let the
runtime build its callable on example inputs of every timed shape. Also the agreement check:
the runtime's outputs on real eval inputs against the eager fp32 outputs of the same model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from suite.measure.interleave import assert_eval
from suite.measure.runtimes import PRECISIONS, RUNTIMES, Built
from suite.models.artifact import cast_floats, inference_module, load_deployed
from suite.parts import Agreement


@dataclass
class Prepared:
    name: str
    built: Built
    module: nn.Module              # the timed module, eager form, in the precision
    model: nn.Module               # the whole deployed model, in the precision (generation uses it)
    agreement: Agreement | None = None


def prepare(folder: Path, *, device: torch.device, runtime: str, precision: str, examples: list[Any],
            threads: int | None, probe: torch.Tensor | None = None) -> Prepared:
    """Load, cast and build one model; with ``probe`` (real eval inputs) also measure agreement."""
    deployed, args = load_deployed(folder, device)
    return prepare_module(deployed, args.get("call", "module"), name=Path(folder).name, device=device,
                          runtime=runtime, precision=precision, examples=examples, threads=threads, probe=probe)


def prepare_module(deployed: nn.Module, call: str, *, name: str, device: torch.device, runtime: str,
                   precision: str, examples: list[Any], threads: int | None,
                   probe: torch.Tensor | None = None) -> Prepared:
    # measured as served: no weight requires grad, so a runtime's graph is the inference graph
    module = inference_module(deployed, call).eval().requires_grad_(False)
    reference = _run(module, probe) if probe is not None else None  # eager fp32, before any cast
    dtype = PRECISIONS[precision]
    module = module.to(dtype)
    assert_eval(module, name)
    built = RUNTIMES.get(runtime).build(module, examples, device=device, precision=precision, threads=threads)
    prepared = Prepared(name, built, module, deployed.to(dtype))
    if probe is not None and reference is not None:
        # under inference_mode like the timed calls: the same compiled graph (or CUDA graph) runs
        prepared.agreement = agreement(_run(built.fn, cast_floats(probe, dtype)), reference, int(probe.shape[0]))
    return prepared


def probe_batch(probe: torch.Tensor, batch: int) -> torch.Tensor:
    """Real eval inputs cut or repeated to ``batch`` rows: a shape the runtime was built for."""
    reps = -(-batch // probe.shape[0])
    return probe.repeat(reps, *[1] * (probe.dim() - 1))[:batch]


@torch.inference_mode()
def _run(fn: Any, x: Any) -> list[torch.Tensor]:
    """``fn(x)`` as float64 CPU tensors, copied before the next call (a CUDA-graph replay's outputs
    live in the graph's pool and are overwritten by the next replay)."""
    return tensors(fn(x))


def tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a model's or runtime's output, as float64 CPU tensors, in a fixed order."""
    if isinstance(out, torch.Tensor):
        return [out.detach().to("cpu", torch.float64)]
    if isinstance(out, np.ndarray):
        return [torch.from_numpy(np.asarray(out, dtype=np.float64))]
    if hasattr(out, "numpy") and callable(out.numpy):  # an onnxruntime OrtValue
        return [torch.from_numpy(np.asarray(out.numpy(), dtype=np.float64))]
    if hasattr(out, "logits"):
        return tensors(out.logits)
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in tensors(v)]
    raise TypeError(f"cannot compare outputs of type {type(out).__name__}")


def agreement(out: Any, reference: list[torch.Tensor], inputs: int) -> Agreement:
    """``max |out - ref| / max |ref|`` over every output, each against its own scale."""
    got = tensors(out)
    if [t.shape for t in got] != [r.shape for r in reference]:
        return {"reference": "eager fp32", "inputs": inputs, "rel_err": None,
                "note": "output shapes differ from eager fp32 (e.g. a different number "
                        "of detections), so they cannot be compared element-wise"}
    worst = 0.0
    for g, r in zip(got, reference):
        scale = r.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
        worst = max(worst, float((g - r).abs().max() / scale))
    return {"reference": "eager fp32", "inputs": inputs, "rel_err": worst}
