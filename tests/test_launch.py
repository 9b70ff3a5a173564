"""The launcher: each worker in a process of its own (forked from a preloaded server, or a fresh
interpreter), with the sweep's environment at launch; a crash, a failure or a timeout is a reason,
never an exception in the sweep."""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from suite.launch import FRESH_ENV, Launcher
from suite.report.store import read_rows

from conftest import FAST, run_main

WORKER = "tests.launch_workers"


@pytest.fixture(params=["forkserver", "fresh"])
def how(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fresh":
        monkeypatch.setenv(FRESH_ENV, "1")
    elif "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no forkserver")
    else:
        monkeypatch.delenv(FRESH_ENV, raising=False)
    return str(request.param)


def launch(tmp_path: Path, action: str, timeout_s: float | None = None) -> tuple[str, dict]:
    spec, out = tmp_path / f"{action}-spec.json", tmp_path / f"{action}-seen.json"
    spec.write_text(json.dumps({"action": action, "out": str(out)}))
    why = Launcher(mode="subprocess", timeout_s=timeout_s).run(WORKER, spec)
    return why, json.loads(out.read_text()) if out.exists() else {}


def test_a_worker_runs_in_its_own_process_with_the_environment_at_launch(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORMBENCH_TEST_MARK", f"set just before {how}")
    why, seen = launch(tmp_path, "ok")
    assert why == ""
    assert seen["mark"] == f"set just before {how}" and seen["pid"] != os.getpid()
    assert seen["argv"] == [str(tmp_path / "ok-spec.json")]
    # forked workers find torch already imported (the server's preload); fresh ones import it themselves
    assert seen["torch_loaded"] is (how == "forkserver")
    assert seen["cuda_initialized"] is False  # a CUDA context does not survive fork: the server never makes one


@pytest.mark.parametrize(("action", "reason"), [("exit", "process exited with status 3"),
                                                ("raise", "process exited with status 1"),
                                                ("segv", "process killed by SIGSEGV")])
def test_a_failing_worker_is_a_reason_not_an_exception(how: str, tmp_path: Path, action: str, reason: str) -> None:
    why, seen = launch(tmp_path, action)
    assert why == reason and seen  # it ran, then failed


def test_a_ddp_worker_under_torchrun_ends_as_its_ranks_do(how: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun's agent (forked from the server, or a fresh interpreter) starts the ranks with the
    environment at launch; a rank that fails makes the worker's reason torchrun's status 1. (A fresh
    agent spends seconds importing torch: that path, torchrun as it always ran, gets the failure only.)"""
    monkeypatch.setenv("NORMBENCH_TEST_MARK", f"ddp {how}")
    for action, reason in (("ok", ""), ("exit", "process exited with status 1"))[how == "fresh":]:
        spec, out = tmp_path / f"{action}-spec.json", tmp_path / f"{action}-seen.json"
        spec.write_text(json.dumps({"action": action, "out": str(out)}))
        assert Launcher(mode="torchrun", nproc=2).run(WORKER, spec) == reason
        seen = json.loads(out.read_text())   # a rank's: fresh interpreters, whoever started them
        assert seen["mark"] == f"ddp {how}" and seen["torch_loaded"] is False


@pytest.mark.gpu
def test_a_worker_makes_its_own_cuda_context(how: str, tmp_path: Path) -> None:
    why, seen = launch(tmp_path, "cuda")
    assert why == "" and seen["cuda_sum"] == 12.0 and seen["cuda_initialized"] is False


def test_a_worker_past_its_timeout_is_killed(how: str, tmp_path: Path) -> None:
    why, seen = launch(tmp_path, "sleep", timeout_s=2)
    assert why == "timed out after 2 s (--cell-timeout)" and seen


def test_a_sweep_with_fresh_interpreters_measures_memory_on_the_same_baseline(tmp_path: Path) -> None:
    """NORMBENCH_FRESH_WORKERS=1: every worker a new interpreter; the memory probe still imports the
    libraries before its baseline, so peak_mb means what it means with forked workers."""
    out = tmp_path / "fresh"
    proc = run_main("--variants", "ln", "--tasks", "imagenet", "--out", str(out), *FAST, env={FRESH_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = read_rows(out / "rows.jsonl")
    assert row["status"] == "ok" and row["launcher"] == "subprocess"
    assert "already imported then: torch, torchvision, timm, transformers" in row["memory"]["source"]


def test_progress_bars_only_on_a_terminal() -> None:
    import io

    from suite.env import interactive

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert interactive(Terminal()) and not interactive(io.StringIO()) and not interactive(object())

