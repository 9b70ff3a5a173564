"""pytest-benchmark: does a small real image folder train as fast as tensors already in memory?

A folder of 96 JPEGs in the ImageNet class-folder layout feeds the imagenet task's real-data
smoke model (32 px, batch 64) through the task's own loader; the same model is fed random
tensors of the same shape. Training steps (fetch the batch, forward, backward, update)
alternate between the two, step by step, so drift hits both alike; the figure of merit is
the ratio of the median step times (``extra_info``). With the in-memory cache the folder's
step costs the transform of 64 cached images on top of the model's step.
``pytest benchmarks/test_data_loading.py --benchmark-only -s`` prints it.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from suite.task import TASKS, to_device
from suite.variants import parse_variant

CLASSES, PER_CLASS = 4, 24  # 96 training images
STEPS = 60                  # per feed, interleaved (the disabled run in the test suite takes 4)


def write_folder(root: Path) -> Path:
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", PER_CLASS), ("val", 6)):
        for c in range(CLASSES):
            d = root / "imagenet" / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = (64 + 8 * (i % 3), 48 + 8 * (i % 2))
                pixels = np.clip(rng.normal(60 * c, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(d / f"img{i}.JPEG", quality=90)
    return root


def test_small_folder_step_time_against_random_tensors(benchmark, tmp_path: Path) -> None:
    torch.manual_seed(0)
    root = write_folder(tmp_path)
    task = TASKS.get("imagenet")()
    data = task.open(root, task.profile("smoke", root)).data
    model = task.build_model(parse_variant("ln"), {})
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    folder = task.train_batches(0)
    x, y = next(folder)

    def random_batches():
        while True:
            yield torch.randn_like(x), torch.randint(0, CLASSES, y.shape)

    feeds = {"folder": folder, "random": random_batches()}
    steps = 4 if benchmark.disabled else STEPS

    def step(feed) -> float:
        t0 = time.perf_counter()
        xb, yb = to_device(next(feed), torch.device("cpu"))
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    def interleaved() -> dict[str, float]:
        times: dict[str, list[float]] = {n: [] for n in feeds}
        for i in range(steps):
            order = list(feeds) if i % 2 == 0 else list(reversed(feeds))
            for name in order:
                times[name].append(step(feeds[name]))
        med = {n: statistics.median(t[len(t) // 5:] or t) * 1e3 for n, t in times.items()}  # warm-up dropped
        return {"folder_ms": med["folder"], "random_ms": med["random"], "ratio": med["folder"] / med["random"]}

    result = benchmark.pedantic(interleaved, rounds=1, iterations=1)
    benchmark.extra_info.update(result | {"images": CLASSES * PER_CLASS, "batch": int(x.shape[0]),
                                          "cached": type(data.train).__name__ == "CachedImages"})
    print(f"\nstep time: folder {result['folder_ms']:.1f} ms, random tensors {result['random_ms']:.1f} ms, "
          f"ratio {result['ratio']:.3f} ({type(data.train).__name__})")
