"""All three tasks through the real CLI on tiny datasets in the public layouts."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FAST, run_cli, write_coco, write_image_folders, write_wikitext

from suite.store import read_rows

TASKS = ("imagenet", "coco", "wikitext")


def test_every_task_runs_on_real_layouts_and_crms_matches_ln(tiny_all: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("--tasks", ",".join(TASKS), "--variants", "ln,crms", "--data-root", str(tiny_all),
                   "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {(r["task"], r["variant"]): r for r in read_rows(out / "rows.jsonl")}
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows.values())
    folder = {"imagenet": "imagenet", "coco": "coco", "wikitext": "wikitext"}
    for (task, _), r in rows.items():
        assert r["dataset"]["kind"] == "real"
        assert r["dataset"]["path"] == str((tiny_all / folder[task]).resolve())
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


def _break(root: Path, task: str) -> str:
    if task == "imagenet":
        shutil.rmtree(root / "imagenet" / "val")
        return "val"
    if task == "coco":
        (root / "coco" / "annotations" / "instances_train2017.json").write_text("{oops")
        return "instances_train2017.json"
    (root / "wikitext" / "wiki.test.raw").write_text("")
    return "wiki.test.raw"


@pytest.mark.parametrize("broken", TASKS)
def test_malformed_data_fails_its_task_only(tmp_path: Path, broken: str) -> None:
    root = tmp_path / "data"
    write_wikitext(write_coco(write_image_folders(root, ["a", "b"], 4, [(20, 20), (30, 24)])))
    needle = _break(root, broken)
    other = "wikitext" if broken != "wikitext" else "imagenet"  # the cheapest healthy task beside it
    out = tmp_path / "run"
    proc = run_cli("--tasks", f"{broken},{other}", "--variants", "ln", "--data-root", str(root), "--out", str(out),
                   *FAST)
    assert proc.returncode == 2  # bad data: a non-zero exit, but the healthy task ran
    errors = [line for line in proc.stderr.splitlines() if line.startswith("normbench: error")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in proc.stderr
    rows = {r["task"]: r for r in read_rows(out / "rows.jsonl")}
    assert rows[broken]["status"] == "error" and needle in rows[broken]["message"]
    assert rows[other]["status"] == "ok" and rows[other]["dataset"]["kind"] == "real"
