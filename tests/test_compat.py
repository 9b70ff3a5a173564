"""Results written by an earlier version keep working.

``fixtures/compat-ad23643`` was written by the suite at commit ad23643 (row schema 3, the flat
``run.json`` configuration) with ``--tasks wikitext --variants ln,none --seeds 0 --max-steps 6
--timing-seconds 0.4 --throughput-batch 2 --jobs 2``: ``interrupted/`` is that sweep killed after
its first row (``NORMBENCH_FAULT=between-rows@1``), ``history/`` three complete nights of it
(``--history``), ``night3-rows.jsonl`` the third night's rows. The fixture is never rewritten:
what today's code must do with it is the test.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import run_main

FIXTURE = Path(__file__).parent / "fixtures" / "compat-ad23643"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_old_interrupted_run_resumes_with_the_same_ids(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "interrupted", run)
    before = (run / "rows.jsonl").read_text()
    results = {p: p.read_bytes() for p in sorted((run / "cells").glob("*/result.json"))}
    r = run_main("--resume", "--out", str(run))
    assert r.returncode == 0, r.stderr
    assert "resuming run" in r.stderr and "training 2 cells" not in r.stderr
    after = (run / "rows.jsonl").read_text()
    assert after.startswith(before)  # the recorded row is kept, not recorded again
    rows = _rows(run / "rows.jsonl")
    assert [(x["variant"], x["status"]) for x in rows] == [("ln", "ok"), ("none", "ok")]
    assert {p: p.read_bytes() for p in results} == results  # the finished cells were reused as they were
    # the row the resumed run wrote has the config_id the old version gave the same cell
    night = {x["key"]: x for x in _rows(FIXTURE / "night3-rows.jsonl")}
    for row in rows:
        assert row["config_id"] == night[row["key"]]["config_id"]
        assert row["config_group"] == night[row["key"]]["config_group"]
    assert json.loads((run / "run.json").read_text()) == json.loads((FIXTURE / "interrupted" / "run.json").read_text())


def test_old_history_compares_and_plots(tmp_path: Path) -> None:
    history = tmp_path / "history"
    shutil.copytree(FIXTURE / "history", history)
    r = run_main("compare", str(FIXTURE / "night3-rows.jsonl"), str(history), "--out", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr
    verdicts = json.loads((tmp_path / "v" / "verdicts.json").read_text())
    assert verdicts and "history" in r.stdout.lower() + json.dumps(verdicts).lower()
    r = run_main("history", "--history", str(history), "--metric", "latency", "--plot", str(tmp_path / "p"))
    assert r.returncode == 0, r.stderr
    assert "wikitext" in r.stdout and "none" in r.stdout
    assert (tmp_path / "p" / "trend-latency.png").stat().st_size > 1000
    r = run_main("history", "--history", str(history), "--metric", "ppl")
    assert r.returncode == 0 and "ln" in r.stdout, r.stderr


def test_every_profile_is_recorded_as_the_old_version_recorded_it() -> None:
    """``profile-digests.json``: the sha256 (first 12 hex) of each task profile's ``as_dict()`` as
    the plan hashes it, computed by ad23643 for every registered task and profile (embedded and
    real). The profile is part of every ``config_id``, so it must hash the same."""
    import hashlib

    from suite.task import TASKS
    now = {}
    for name, cls in TASKS.items():
        for embedded in (True, False):
            for pn, p in cls().profiles(embedded).items():
                text = json.dumps(p.as_dict(), sort_keys=True, default=str)
                now[f"{name}/{pn}/{embedded}"] = hashlib.sha256(text.encode()).hexdigest()[:12]
    old = json.loads((FIXTURE / "profile-digests.json").read_text())
    assert {k: now.get(k) for k in old} == old
