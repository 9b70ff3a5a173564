"""Shared fixtures: CLI runner, fast sweep flags, tiny real-layout datasets, the gpu marker."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
#: budgets that keep an end-to-end sweep to seconds of work per cell
FAST = ["--max-steps", "6", "--timing-seconds", "0.4"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (no GPU here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def plugin_env(*modules: str) -> dict[str, str]:
    """Environment for a subprocess that also loads the test-only plugin modules."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), str(ROOT), env.get("PYTHONPATH", "")])
    env["NORMBENCH_PLUGINS"] = ",".join(modules)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_suite.py"), *args], cwd=ROOT, env=env or plugin_env(),
                          capture_output=True, text=True, timeout=timeout)


def write_image_folders(root: Path, classes: list[str], per_class: int, sizes: list[tuple[int, int]]) -> Path:
    """``root/imagenet/{train,val}/<class>/*.JPEG`` with class-dependent colours, varied sizes."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(1, per_class // 2))):
        for ci, cls in enumerate(classes):
            d = root / "imagenet" / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = sizes[(ci + i) % len(sizes)]
                base = np.zeros((h, w, 3), np.uint8)
                base[..., ci % 3] = 200
                img = np.clip(base + rng.integers(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{cls}_{i}.JPEG")
    return root


@pytest.fixture
def tiny_imagenet(tmp_path: Path) -> Path:
    return write_image_folders(tmp_path / "data", ["n01", "n02", "n03"], 6, [(40, 30), (24, 48), (33, 33)])
