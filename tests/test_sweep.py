"""End-to-end sweeps through the real CLI: rows, failures as rows, kill + resume."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from suite.report.rows import SCHEMA_VERSION
from suite.report.store import read_rows

from conftest import FAST, run_main, start_cli


def test_failing_variants_become_rows_and_the_sweep_goes_on(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Also the cells training side by side (--jobs 2): failures next to a good cell stay apart; and
    the log of a sweep whose stderr is no terminal (here: captured) has one line per cell and per
    timing group and never a carriage return (no progress bar frames), workers' output included."""
    out = tmp_path / "run"
    proc = run_main("--variants", "ln,boom,nanorm", "--tasks", "imagenet", "--out", str(out), "--jobs", "2", *FAST,
                    plugins=("faulty_norms",))
    assert proc.returncode == 1, proc.stderr  # a cell errored: exit 1, but everything is recorded
    workers = capfd.readouterr().err
    assert "\r" not in proc.stderr + workers
    log = [line.strip() for line in proc.stderr.splitlines()]
    for cell in ("imagenet/ln/seed 0: ok top1 ", "imagenet/boom/seed 0: error RuntimeError: boom",
                 "imagenet/nanorm/seed 0: diverged non-finite loss"):
        assert sum(line.startswith(cell) for line in log) == 1, (cell, log)
    assert sum(line.startswith("timing imagenet/seed 0 eager fp32: 1 model, ") for line in log) == 1, log
    rows = {r["variant"]: r for r in read_rows(out / "rows.jsonl")}
    assert set(rows) == {"ln", "boom", "nanorm"}
    assert rows["boom"]["status"] == "error" and "boom from the test plugin" in rows["boom"]["message"]
    assert rows["nanorm"]["status"] == "diverged" and "non-finite loss" in rows["nanorm"]["message"]
    ln = rows["ln"]
    assert ln["status"] == "ok", ln["message"]
    # the row carries quality, measurement, data identity and provenance
    assert 0 <= ln["quality"]["top1"] <= 100
    assert ln["latency"]["p50_ms"] > 0 and ln["latency"]["p99_ms"] >= ln["latency"]["p50_ms"]
    assert ln["latency"]["ratio"]["baseline"] == "ln" and ln["latency"]["ratio"]["value"] == 1.0
    assert ln["throughput"]["value"] > 0 and ln["throughput"]["unit"] == "img/s"
    assert ln["memory"]["peak_mb"] is not None and ln["memory"]["source"].startswith("cpu:")
    assert "already imported then: torch, torchvision, timm, transformers" in ln["memory"]["source"]  # forked
    assert ln["train"]["concurrent"] == 2 and ln["train"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    assert "2 at once" in proc.stderr
    assert ln["model"]["params"] > 0 and ln["model"]["flops"] > 0
    assert ln["deploy"]["rel_err"] == 0.0
    assert ln["host_state"]["cpus"] >= 1 and ln["host_state"]["others_cpu_fraction"] >= 0.0
    assert ln["dataset"]["kind"] == "embedded" and "embedded" in ln["dataset"]["label"]
    prov = ln["provenance"]
    assert prov["schema_version"] == ln["schema_version"] == SCHEMA_VERSION
    assert prov["libraries"]["torch"] and prov["device"]["type"] == "cpu" and "git" in prov
    curve = ln["train"]["curve"]  # the learning curve: ~10 points of train loss and the eval metric on a subset
    assert curve["metric"] == "top1" and curve["eval_items"] == 128 and curve["steps"] == [1, 2, 3, 4, 5, 6]
    assert len(curve["train_loss"]) == len(curve["values"]) == 6 and all(0 <= v <= 100 for v in curve["values"])
    board = (out / "leaderboard.md").read_text()
    assert "embedded" in board and "boom from the test plugin" in board
    assert "Trained 2 cells at once with" in board
    assert "(curves-imagenet-smoke-cpu-embedded.png)" in board
    assert (out / "curves-imagenet-smoke-cpu-embedded.png").stat().st_size > 1000
    assert "One seed: the differences to `ln` get no interval" in board  # one seed: the section says why no ranking
    assert board.index("| ln ") < board.index("| boom ")
    assert (out / "table.csv").read_text().count("\n") == 4


def test_sigkill_leaves_finished_rows_and_resume_completes_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start_cli("--variants", "ln,none", "--tasks", "imagenet", "--seeds", "0,1", "--out", str(out), *FAST,
                     folder=tmp_path / "cli")
    rows_file = out / "rows.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (rows_file.exists() and rows_file.read_text().count("\n") >= 2):
        time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and every worker process it started
    assert proc.wait().returncode == -signal.SIGKILL
    finished = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    assert len(finished) >= 2 and all(r["status"] == "ok" for r in finished)
    assert {r["seed"] for r in finished} >= {0}

    resumed = run_main("--variants", "ln,none", "--tasks", "imagenet", "--seeds", "0,1", "--out", str(out),
                       "--resume", *FAST)
    assert resumed.returncode == 0, resumed.stderr
    rows = list(read_rows(rows_file))
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 4
    assert {(r["variant"], r["seed"]) for r in rows} == {("ln", 0), ("none", 0), ("ln", 1), ("none", 1)}
    assert all(r["status"] == "ok" and r["latency"]["ratio"]["baseline"] == "ln" for r in rows)
    # a second resume has nothing left to do and records nothing new
    again = run_main("--variants", "ln,none", "--tasks", "imagenet", "--seeds", "0,1", "--out", str(out),
                     "--resume", *FAST)
    assert again.returncode == 0 and len(list(read_rows(rows_file))) == 4


def test_reusing_an_output_folder_without_resume_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}")
    proc = run_main("--variants", "ln", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--resume" in proc.stderr


def test_inline_runs_every_worker_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--inline: cells, timing and memory run in the sweep's process (a debugger can step into them)."""
    import subprocess

    from suite.cli.main import main

    real_run = subprocess.run

    def no_python_subprocess(cmd: list[str], *args: object, **kwargs: object) -> object:
        if cmd[0] == sys.executable:
            raise AssertionError(f"--inline started a worker process: {cmd}")
        return real_run(cmd, *args, **kwargs)  # provenance may ask git for the commit

    monkeypatch.setattr(subprocess, "run", no_python_subprocess)
    out = tmp_path / "inline"
    assert main(["--variants", "ln,none", "--tasks", "imagenet", "--out", str(out), "--inline", *FAST]) == 0
    rows = {r["variant"]: r for r in read_rows(out / "rows.jsonl")}
    assert {r["status"] for r in rows.values()} == {"ok"} and {r["launcher"] for r in rows.values()} == {"inline"}
    assert rows["none"]["latency"]["ratio"]["baseline"] == "ln" and "inline" in rows["ln"]["memory"]["source"]
    assert main(["--variants", "ln", "--tasks", "imagenet", "--inline", "--nproc-per-node", "2"]) == 2
