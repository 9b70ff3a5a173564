"""Bad input: one line on stderr that names the fix, exit status 2, no traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite.cli.main import main

from conftest import run_cli


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unknown_variant_exits_2_listing_known_variants_in_one_line() -> None:
    proc = run_cli("--variants", "ln,lnn", "--tasks", "imagenet")
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "'lnn'" in err and "Did you mean 'ln'" in err and "ln, lns, none" in err


@pytest.mark.parametrize("argv, needle", [
    (["--variants", "ln,,"], "malformed --variants"),
    (["--variants", "ln,ln"], "twice"),
    (["--variants", "ln+"], "malformed variant"),
    (["--tasks", "imagnet"], "Did you mean 'imagenet'"),
    (["--seeds", "x"], "--seeds 'x'"),
    (["--seeds", "0,-1"], "non-negative integers"),
    (["--max-steps", "0"], "--max-steps must be a positive integer"),
    (["--profile", "nope"], "use --profile smoke"),
    (["--device", "tpu"], "invalid choice"),
    (["--bogus"], "unrecognized arguments"),
    (["--variants", "ln,un", "--set", "un.window=8"], "un has no keyword 'window' (known: eps, window_size"),
    (["--variants", "ln", "--set", "un.window_size=8"], "not in --variants"),
    (["--variants", "un", "--set", "un.window_size"], "use VARIANT.KEY=VALUE"),
])
def test_malformed_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert needle in one_line_error(capsys, argv)


def test_missing_data_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = one_line_error(capsys, ["--data-root", str(tmp_path / "nowhere"), "--variants", "ln"])
    assert "is not a folder" in err and "imagenet/" in err


def test_wrong_layout_names_the_expected_layout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "imagenet" / "train" / "n01").mkdir(parents=True)
    (tmp_path / "imagenet" / "train" / "n01" / "a.JPEG").write_bytes(b"")
    err = one_line_error(capsys, ["--data-root", str(tmp_path), "--variants", "ln", "--out", str(tmp_path / "o")])
    assert "val is missing" in err and "{train,val}/<class>/*.JPEG" in err
    assert not (tmp_path / "o" / "rows.jsonl").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert "use --device cpu" in one_line_error(capsys, ["--device", "cuda", "--variants", "ln"])


def test_resume_without_an_earlier_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.setattr("suite.cli.run.RESULTS", tmp_path)
    assert "--resume found no earlier run" in one_line_error(capsys, ["--resume", "--variants", "ln"])


def test_list_names_every_variant_and_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("ln", "none", "imagenet"):
        assert f"  {name} " in out

