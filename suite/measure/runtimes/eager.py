"""``eager``: the deployed module called as it is (PyTorch eager mode): the default runtime."""
from __future__ import annotations

from typing import Any

import torch

from suite.measure.runtimes import Built, Runtime, register_runtime


@register_runtime("eager")
class Eager(Runtime):
    """PyTorch eager execution of the deployed module (the default; nothing is built)."""

    @classmethod
    def build(cls, model: torch.nn.Module, examples: list[Any], *, device: torch.device, precision: str,
              threads: int | None) -> Built:
        return Built(model, 0.0, {"torch": torch.__version__})
