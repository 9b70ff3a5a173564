"""A norm defined outside this repository, shipped as a package with an entry point, works end to end.

The test writes a throw-away distribution (``pyproject.toml`` with an entry point in the group
``normbench.norms``, one module with the norm class), installs it into the running interpreter's
environment with pip (``--no-deps --no-build-isolation``: no network), runs ``--list`` and a tiny
sweep through the real command line, and uninstalls it whatever happens.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from suite.report.store import read_rows

from conftest import FAST, run_forked

DIST = "normbench-softsign-plugin-test"
NAME = "softsign_test"

pytestmark = pytest.mark.slow  # pip, two --list runs and a two-cell sweep

PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "0.1.0"
description = "a normbench norm plugin, built and removed by tests/test_plugin_package.py"

[project.entry-points."normbench.norms"]
{NAME} = "normbench_softsign_test:SoftSign"

[tool.setuptools]
py-modules = ["normbench_softsign_test"]
"""

MODULE = '''\
"""A point-wise norm that lives outside normbench: y = g * x / (1 + |alpha * x|) + b."""
import torch
import torch.nn as nn


class SoftSign(nn.Module):
    """Softsign y = g * x / (1 + |alpha x|) + b: a norm from an installed package (plugin test)."""

    version = "1"

    def __init__(self, dim, *, alpha_init=0.5, eps=None):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        z = self.alpha * x
        return self.weight * (z / (1 + z.abs())) + self.bias
'''


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)


def test_a_norm_package_with_an_entry_point_is_listed_and_swept(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "normbench_softsign_test.py").write_text(textwrap.dedent(MODULE))
    pip("uninstall", "-y", DIST)  # a leftover from an interrupted run
    installed = pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(src))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:  # each command in a process of its own: its registries discover the installed entry point afresh
        listed = run_forked("--list", folder=tmp_path / "list", timeout=300)
        assert listed.returncode == 0, listed.stderr
        assert f"{NAME}" in listed.stdout and "norm from an installed package" in listed.stdout

        out = tmp_path / "run"
        swept = run_forked("--variants", f"ln,{NAME}", "--tasks", "imagenet", *FAST, "--out", str(out),
                           folder=tmp_path / "sweep")
        assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
        rows = {r["variant"]: r for r in read_rows(out / "rows.jsonl")}
        assert set(rows) == {"ln", NAME}
        assert rows[NAME]["status"] == "ok", rows[NAME]["message"]
        assert rows[NAME]["deploy"]["rel_err"] <= 1e-5
        assert rows[NAME]["latency"]["ratio"]["baseline"] == "ln"
    finally:
        removed = pip("uninstall", "-y", DIST)
        assert removed.returncode == 0, removed.stdout + removed.stderr
    gone = run_forked("--list", folder=tmp_path / "gone", timeout=300)
    assert NAME not in gone.stdout
