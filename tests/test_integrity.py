"""Results integrity: resume completes the run it was asked to, kills at any point lose nothing and
duplicate nothing, one writer per folder, and nothing read back from a results folder executes code."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from suite.faults import POINTS
from suite.report.store import read_rows

from conftest import FAST, ROOT, plugin_env, run_cli, run_forked, run_main

SWEEP = ["--variants", "ln,none", "--tasks", "imagenet", *FAST]


def sweep(out: Path, *extra: str, fault: str | None = None, mark: Path | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI in a process and session of its own, so an injected kill takes it down and nothing else."""
    env = plugin_env()
    if fault:
        env |= {"NORMBENCH_FAULT": fault, "NORMBENCH_FAULT_MARK": str(mark)}
    return run_forked(*extra, "--out", str(out), env=env, folder=out.parent / f"cli-{uuid.uuid4().hex[:8]}",
                      timeout=timeout)


def whole_rows(path: Path) -> list[dict]:
    return list(read_rows(path))


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_any_point_then_resume_records_every_cell_once(tmp_path: Path, point: str) -> None:
    out = tmp_path / "run"
    killed = sweep(out, *SWEEP, "--inline", fault=point, mark=tmp_path / "mark")
    assert killed.returncode == -9, (point, killed.stderr[-2000:])  # SIGKILLed at the point
    assert (tmp_path / "mark").exists()
    resumed = run_main("--resume", "--out", str(out))  # in this process: the fault is not armed here
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = whole_rows(out / "rows.jsonl")
    counts = Counter(r["key"] for r in rows)
    assert sorted(counts) == ["imagenet|ln|0|smoke|cpu|eager|fp32", "imagenet|none|0|smoke|cpu|eager|fp32"]
    assert set(counts.values()) == {1}, counts  # nothing lost, nothing twice
    assert all(r["status"] == "ok" and r["config_id"] for r in rows)
    assert (out / "leaderboard.md").exists()


def test_resume_runs_the_stored_configuration_and_refuses_another(tmp_path: Path) -> None:
    out = tmp_path / "D"
    args = ["--variants", "ln,none,bn", "--tasks", "imagenet,wikitext", "--max-steps", "4",
            "--timing-seconds", "0.3", "--inline"]
    killed = sweep(out, *args, fault="between-rows@3", mark=tmp_path / "mark")  # dies after the imagenet group
    assert killed.returncode == -9
    assert len(whole_rows(out / "rows.jsonl")) == 3
    before = (out / "rows.jsonl").read_bytes()
    refused = run_main("--resume", "--out", str(out), "--variants", "ln,un")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    err = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "--variants would change it (ln,none,bn -> ln,un)" in err[0]
    assert (out / "rows.jsonl").read_bytes() == before  # the refused call wrote nothing
    run_json = (out / "run.json").read_bytes()
    out = out.rename(tmp_path / "moved")  # a run folder moved (or copied) since it started completes where it is
    resumed = run_main("--resume", "--out", str(out), "--cell-timeout", "600")  # allowed: no cell changes meaning
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = whole_rows(out / "rows.jsonl")
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6
    assert {r["variant"] for r in rows} == {"ln", "none", "bn"} and {r["task"] for r in rows} == {"imagenet",
                                                                                                  "wikitext"}
    assert {r["train"]["steps"] for r in rows} == {4} and len({r["run_id"] for r in rows}) == 1
    assert (out / "run.json").read_bytes() == run_json  # never overwritten
    assert not (tmp_path / "D").exists()


def test_a_second_sweep_on_the_same_folder_exits_at_once(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, str(ROOT / "run_suite.py"), *SWEEP, "--out", str(out)], cwd=ROOT,
                             env=plugin_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.time() + 60
        while not ((out / ".lock").exists() and (out / ".lock").read_text().strip()) and time.time() < deadline:
            time.sleep(0.2)
        t0 = time.perf_counter()
        second = run_cli(*SWEEP, "--out", str(out), "--resume")
        assert time.perf_counter() - t0 < 5  # interpreter start-up included: refused before torch loads
        assert second.returncode == 2 and f"in use by another run (pid {first.pid})" in second.stderr
    finally:
        os.killpg(first.pid, 9)
        first.wait()
    # the dead owner's lock is stale: the next writer takes it over and records its own pid
    from suite.report.store import Store
    with Store(out).lock():
        assert (out / ".lock").read_text().strip() == str(os.getpid())


class _Planted:
    def __reduce__(self):  # unpickling this would create the marker file
        return (Path.write_text, (Path(os.environ["PLANT_MARK"]), "executed"))


def test_a_planted_pickle_in_a_results_folder_is_never_executed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    assert run_main(*SWEEP, "--inline", "--out", str(out)).returncode == 0
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PLANT_MARK", str(marker))
    (out / "cells" / "imagenet-ln-s0" / "deployed.pt").write_bytes(pickle.dumps(_Planted()))
    (out / "rows.jsonl").unlink()  # as if killed before the rows landed: resume reads the deployed models back
    # resumed inline, in this process, where _Planted is importable: unpickling it would create the marker
    proc = run_main("--resume", "--out", str(out))
    assert not marker.exists()
    rows = {r["variant"]: r for r in whole_rows(out / "rows.jsonl")}
    assert rows["ln"]["status"] == "error" and "could not build it" in rows["ln"]["message"]
    assert "Weights only load failed" in rows["ln"]["message"] or "Unpickl" in rows["ln"]["message"]
    assert proc.returncode == 1


def test_no_code_path_unpickles_with_weights_only_false() -> None:
    hits = [f"{p.relative_to(ROOT)}:{n}" for folder in ("suite", "tasks") for p in (ROOT / folder).rglob("*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1) if "weights_only=False" in line]
    assert hits == []


def test_rows_carry_config_ids_that_tell_configurations_apart(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_main(*SWEEP, "--inline", "--out", str(a)).returncode == 0
    assert run_main(*SWEEP, "--inline", "--max-steps", "3", "--out", str(b)).returncode == 0
    ra = {r["variant"]: r for r in whole_rows(a / "rows.jsonl")}
    rb = {r["variant"]: r for r in whole_rows(b / "rows.jsonl")}
    assert ra["ln"]["config_group"] == ra["none"]["config_group"]  # one comparison: ranked together
    assert ra["ln"]["config_id"] != ra["none"]["config_id"]
    assert ra["ln"]["config_id"] != rb["ln"]["config_id"] and ra["ln"]["config_group"] != rb["ln"]["config_group"]
    verdicts = run_main("compare", str(b), str(a))
    assert verdicts.returncode == 0 and "config_id" in verdicts.stdout and "incomparable" in verdicts.stdout
    # the leaderboard of both runs together never ranks them in one table
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "rows.jsonl").write_bytes((a / "rows.jsonl").read_bytes() + (b / "rows.jsonl").read_bytes())
    from suite.report.leaderboard import leaderboard_markdown
    md = leaderboard_markdown([r | {"key": r["key"] + ("|b" if i >= 2 else "")}
                               for i, r in enumerate(whole_rows(mixed / "rows.jsonl"))])
    assert md.count("## imagenet") == 2 and "different configurations" in md
    assert "6 steps, batch 64" in md and "3 steps, batch 64" in md
