"""A full disk (a 600 KB tmpfs as ``--out``) and ``--out`` naming a file: one line each, exit 2,
nothing recorded lost, and ``--resume`` completes the run once there is space again."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--tasks", "imagenet", "--variants", "ln,crms", "--max-steps", "2", "--timing-seconds", "0.2"]


def _suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "run_suite.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_resume_completes_once_there_is_space(small_disk: Path) -> None:
    out = small_disk / "run"
    r = _suite(*ARGS, "--out", str(out))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert last.startswith("normbench: error: no space left for") and str(out) in last and "--resume" in last
    before = (out / "rows.jsonl").read_text() if (out / "rows.jsonl").exists() else ""
    assert all(json.loads(line) for line in before.splitlines())   # what was written is whole
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    resumed = _suite("--resume", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert (out / "rows.jsonl").read_text().startswith(before)
    assert sorted(r["variant"] for r in rows if r["status"] == "ok") == ["crms", "ln"]


def test_out_naming_a_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "results.txt"
    f.write_text("not a folder")
    r = _suite(*ARGS, "--out", str(f))
    assert r.returncode == 2 and r.stderr.strip() == (f"normbench: error: --out {f} is a file, not a folder; give a "
                                                      f"new folder (or a run's, with --resume)")
    assert f.read_text() == "not a folder"
