"""All three tasks through the real CLI on tiny datasets in the public layouts."""
from __future__ import annotations

from pathlib import Path

import pytest

from suite.report.store import read_rows

from conftest import FAST, run_main, write_coco, write_wikitext

TASKS = ("imagenet", "coco", "wikitext")


def test_every_task_runs_on_real_layouts_and_crms_matches_ln(tiny_all: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_main("--tasks", ",".join(TASKS), "--variants", "ln,crms", "--data-root", str(tiny_all),
                    "--out", str(out), "--inline", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["task"], r["variant"]): r for r in read_rows(out / "rows.jsonl")}
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows.values())
    for (task, _), r in rows.items():  # each task reads its own folder of the data root
        assert r["dataset"]["kind"] == "real"
        assert r["dataset"]["path"] == str((tiny_all / task).resolve())
        assert "real" in r["dataset"]["label"] and r["deploy"]["rel_err"] is not None
    # same seed, exact rewrite: the quality is the same (short budget; long runs drift by rounding only)
    assert rows["imagenet", "crms"]["quality"]["top1"] == rows["imagenet", "ln"]["quality"]["top1"]
    assert rows["coco", "crms"]["quality"]["map"] == pytest.approx(rows["coco", "ln"]["quality"]["map"], abs=0.05)
    assert rows["wikitext", "crms"]["quality"]["ppl"] == pytest.approx(rows["wikitext", "ln"]["quality"]["ppl"],
                                                                     rel=1e-4)
    # the deployed CRMS forms really run at width d-1 and agree with their training form
    for task in ("coco", "wikitext"):
        assert rows[task, "crms"]["deploy"]["rel_err"] < 1e-4
    board = (out / "leaderboard.md").read_text()
    assert "real:" in board and "embedded" not in board


def test_malformed_data_fails_its_task_only_and_overrides_reach_the_others(tmp_path: Path) -> None:
    # each task's malformed layouts are unit-tested beside the task; here the sweep-level contract:
    # one line naming the file, that task's cells become error rows, the other task runs normally
    root = tmp_path / "data"
    write_wikitext(write_coco(root))
    (root / "coco" / "annotations" / "instances_train2017.json").write_text("{oops")
    out = tmp_path / "run"
    proc = run_main("--tasks", "coco,wikitext", "--variants", "prepbn", "--set", "prepbn.total_steps=3",
                    "--data-root", str(root), "--out", str(out), *FAST)
    assert proc.returncode == 2  # bad data: a non-zero exit, but the healthy task ran
    errors = [line for line in proc.stderr.splitlines() if line.startswith("normbench: error")]
    assert len(errors) == 1 and "instances_train2017.json" in errors[0] and "Traceback" not in proc.stderr
    rows = {r["task"]: r for r in read_rows(out / "rows.jsonl")}
    assert rows["coco"]["status"] == "error" and "not readable COCO JSON" in rows["coco"]["message"]
    lm = rows["wikitext"]
    assert lm["status"] == "ok" and lm["dataset"]["kind"] == "real"
    # --set wins over the budget rule; the LM warm-up rule (10% of 6 steps, at least 1) still applies
    assert lm["model"]["variant_kwargs"] == {"total_steps": 3, "warmup_steps": 1}
