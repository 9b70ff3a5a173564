"""``run_suite.py status DIR`` on a run folder moved from where it was written (the compatibility
fixture: an interrupted run of an earlier version)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from suite.cli.main import main

FIXTURE = Path(__file__).parent / "fixtures" / "compat-ad23643" / "interrupted"


def test_status_shows_each_cell_its_training_and_its_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "moved"
    shutil.copytree(FIXTURE, run)
    (run / "cells" / "wikitext-none-s0" / "result.json").unlink()   # as if that cell were still training
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{run}: 2 cells: 1 done, 0 failed, 1 pending"
    lines = {line.split("|")[1].strip(): [x.strip() for x in line.split("|")[2:-1]] for line in out.splitlines()[3:]}
    assert lines["wikitext/ln/s0"] == ["ok", "1/1 1 ok", "done"]
    assert lines["wikitext/none/s0"] == ["running or queued", "0/1 none", "pending"]


def test_status_of_a_folder_without_a_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"normbench: error: status: {tmp_path} holds no run.json; give the "
                                               f"--out folder of a sweep")
