"""A deployed model on disk as weights plus the JSON it is rebuilt from; nothing executable.

The timing and memory workers (and a resumed run, or a results folder received from someone
else) read deployed models back. Pickled modules would execute code on load, so a deployed
model travels as two files: ``deployed.json``, the build description (a factory from a fixed
allow-list, the model name, variant and keyword arguments, how to call it), and
``deployed.pt``, its ``state_dict`` of plain tensors, read with ``torch.load(weights_only=True)``.
Loading rebuilds the training-form model, deploys it (deploy's structure does not depend on
the weights), and loads the weights strictly.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn

from suite import jsonio
from suite.errors import UsageError
from suite.parts import BuildArgs

SPEC_FILE, WEIGHTS_FILE = "deployed.json", "deployed.pt"
CALLS = ("module", "logits")


def _factories() -> dict[str, Callable[..., nn.Module]]:
    from suite.models.create import create_model
    from suite.models.detection import create_detector
    return {"model": create_model, "detector": create_detector}


def build(args: BuildArgs) -> nn.Module:
    """The training-form model described by ``args`` (``factory``, ``name``, ``variant``,
    ``variant_kwargs``, ``kwargs``); the factory must be one of the allow-listed builders."""
    factories = _factories()
    if args.get("factory") not in factories:
        raise UsageError(f"unknown model factory {args.get('factory')!r} in a build description "
                         f"(known: {', '.join(factories)}); the results folder is not from this suite")
    return factories[args["factory"]](args["name"], args["variant"], variant_kwargs=dict(args["variant_kwargs"]),
                                      **args["kwargs"])


def save_deployed(folder: Path, deployed: nn.Module, args: BuildArgs) -> None:
    """Write ``deployed.json`` (the build description) and ``deployed.pt`` (the weights)."""
    folder = Path(folder)
    torch.save({k: v.detach().cpu() for k, v in deployed.state_dict().items()}, folder / WEIGHTS_FILE)
    jsonio.write_atomic(folder / SPEC_FILE, args)


def exists(folder: Path) -> bool:
    return (Path(folder) / SPEC_FILE).exists() and (Path(folder) / WEIGHTS_FILE).exists()


def load_deployed(folder: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, BuildArgs]:
    """The deployed model (eval mode, on ``device``) and its build description."""
    from suite.models.deploy import deploy
    folder = Path(folder)
    args = cast(BuildArgs, jsonio.read(folder / SPEC_FILE))   # written by ``save_deployed``
    model = deploy(build(args).eval())
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), args


class LogitsOnly(nn.Module):
    """A causal LM as ``ids -> logits`` (no KV cache returned): what is timed and exported."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=ids, use_cache=False).logits


def inference_module(model: nn.Module, call: str = "module") -> nn.Module:
    """The module that maps a timing input to the outputs: the model, or its logits for an LM."""
    if call not in CALLS:
        raise UsageError(f"unknown call {call!r} in a build description (known: {', '.join(CALLS)})")
    return LogitsOnly(model).eval() if call == "logits" else model


class InPrecision(nn.Module):
    """``model`` run in a low precision: floating inputs cast to ``dtype`` on the way in.

    The wrapped model's parameters and buffers are cast (what deploying in that precision
    means); integer inputs (token ids) pass unchanged; outputs are left as the model gives them.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model.to(dtype), dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*cast_floats(args, self.dtype), **cast_floats(kwargs, self.dtype))


def cast_floats(obj: Any, dtype: torch.dtype) -> Any:
    """Floating tensors in ``obj`` (nested lists, tuples, dicts) cast to ``dtype``; the rest unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: cast_floats(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cast_floats(v, dtype) for v in obj)
    return obj
