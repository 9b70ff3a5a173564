"""Bad input: one line on stderr that names the fix, exit status 2, no traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from suite.cli.main import main

from conftest import run_main


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unknown_variant_exits_2_listing_known_variants_in_one_line() -> None:
    proc = run_main("--variants", "ln,lnn", "--tasks", "imagenet")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "'lnn'" in err and "Did you mean 'ln'" in err and "ln, lns, none" in err


def test_resume_without_an_earlier_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.setattr("suite.cli.run.RESULTS", tmp_path)
    assert "--resume found no earlier run" in one_line_error(capsys, ["--resume", "--variants", "ln"])


def test_list_names_every_variant_and_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("ln", "none", "imagenet"):
        assert f"  {name} " in out

