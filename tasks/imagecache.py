"""Small image datasets held in memory, decoded once: fast training on a few hundred real images.

Decoding a JPEG costs far more than a tiny model's training step, and a DataLoader worker
started anew every epoch (an epoch of a 96-image folder is one batch) costs about a second.
So a split whose decoded images fit a memory budget is decoded once, each image resized so its
shorter side is the evaluation resize (``img / crop_pct``), and kept as uint8 pixels; every
access then runs the split's own transform (random-resized crop, flip, ...) on the cached
pixels, in the training process (no worker). A split too large for the budget streams from
disk through persistent DataLoader workers. The budget is ``NORMBENCH_IMAGE_CACHE_MB``
(default 2048 MiB); 0 turns caching off.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

CACHE_ENV = "NORMBENCH_IMAGE_CACHE_MB"
DEFAULT_BUDGET_MB = 2048


def budget_mb() -> float:
    try:
        return float(os.environ.get(CACHE_ENV, DEFAULT_BUDGET_MB))
    except ValueError:
        return DEFAULT_BUDGET_MB


def cached_size(w: int, h: int, short: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to ``short`` (never enlarged)."""
    scale = min(1.0, short / min(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def estimate_mb(paths: list[str], short: int) -> float:
    """Decoded, resized RGB bytes of every image, from the file headers alone."""
    from PIL import Image
    total = 0
    for p in paths:
        with Image.open(p) as im:
            w, h = cached_size(*im.size, short)
        total += w * h * 3
    return total / 2**20


class CachedImages:
    """A torchvision ``ImageFolder``'s samples decoded once; ``__getitem__`` as the folder's."""

    def __init__(self, folder: Any, short: int) -> None:
        from PIL import Image
        self.samples, self.targets, self.transform = folder.samples, folder.targets, folder.transform
        self.pixels: list[np.ndarray] = []
        for path, _ in self.samples:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
                size = cached_size(*rgb.size, short)
                self.pixels.append(np.asarray(rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BILINEAR)))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image
        return self.transform(Image.fromarray(self.pixels[i])), self.targets[i]


def maybe_cache(folder: Any, img: int, crop_pct: float = 0.875, budget: float | None = None) -> Any:
    """The folder itself, or a ``CachedImages`` of it when its decoded pixels fit the budget."""
    short = math.ceil(img / crop_pct)
    budget = budget_mb() if budget is None else budget
    if budget <= 0 or estimate_mb([p for p, _ in folder.samples], short) > budget:
        return folder
    return CachedImages(folder, short)
