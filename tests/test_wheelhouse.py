"""`make wheelhouse`: wheels for the GPU machine's CPython 3.12 that cover what its image lacks."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "scripts" / "wheelhouse.py")
wheelhouse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheelhouse)


@pytest.mark.parametrize("name, ok", [
    ("rpds_py-2026.9.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
    ("pycocotools-2.0.11-cp312-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("jsonschema-4.26.0-py3-none-any.whl", True),
    ("rpds_py-2026.9.1-cp311-cp311-manylinux_2_17_x86_64.whl", False),
    ("rpds_py-2026.9.1-cp312-cp312-macosx_11_0_arm64.whl", False),
    ("rpds_py-2026.9.1-cp312-cp312-manylinux_2_17_aarch64.whl", False),
])
def test_wheel_tags_are_read_as_pip_would(name: str, ok: bool) -> None:
    assert wheelhouse.tags_ok(Path(name)) is ok


def test_the_wheelhouse_covers_what_the_gpu_image_lacks(tmp_path: Path) -> None:
    """Downloads from the package registry (as `make wheelhouse` does)."""
    wheels = wheelhouse.build(tmp_path)
    assert wheels and all(wheelhouse.tags_ok(w) for w in wheels), [w.name for w in wheels]
    have = wheelhouse.image_packages() | {wheelhouse.wheel_name(w) for w in wheels}
    missing = [d for d in wheelhouse.suite_dependencies() if wheelhouse.normalize(d) not in have]
    needed = {wheelhouse.normalize(r) for w in wheels for r in wheelhouse.requires(w)}
    assert not missing and needed <= have, (missing, needed - have)
    names = {wheelhouse.wheel_name(w) for w in wheels}
    assert {"jsonschema", "pycocotools", "rpds-py"} <= names  # what the image lacks today
    pins = wheelhouse.pins()
    pinned = [w for w in wheels if wheelhouse.wheel_name(w) in pins]
    assert pinned and all(w.name.split("-")[1] == pins[wheelhouse.wheel_name(w)] for w in pinned)
