"""--shard I/N covers every cell exactly once; merge rebuilds the unsharded run's store and board."""
from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from suite import jsonio
from suite.cli.main import main
from suite.errors import UsageError
from suite.report.leaderboard import leaderboard_markdown
from suite.report.store import Store, read_rows
from suite.sweep.merge import merge_rows
from suite.sweep.shard import Shard, parse_shard, shard_groups

from conftest import FAST, run_main
from synth import make_row, provenance

TASKS, SEEDS, VARIANTS = ["imagenet", "coco", "wikitext"], [0, 1, 2], ["ln", "un", "rms"]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12])
def test_shards_cover_every_cell_exactly_once(n: int) -> None:
    cells = []
    for i in range(1, n + 1):
        cells += [(t, v, s) for t, s in shard_groups(TASKS, SEEDS, Shard(i, n)) for v in VARIANTS]
    assert sorted(cells) == sorted(itertools.product(TASKS, VARIANTS, SEEDS))
    sizes = [len(shard_groups(TASKS, SEEDS, Shard(i, n))) for i in range(1, n + 1)]
    assert max(sizes) - min(sizes) <= 1
    # the order the user lists tasks or seeds in does not move a group to another shard
    assert shard_groups(TASKS[::-1], SEEDS[::-1], Shard(1, n)) == shard_groups(TASKS, SEEDS, Shard(1, n))


@pytest.mark.parametrize("text", ["3/2", "0/2", "1/0", "a/b", "1", "1/2/3", ""])
def test_malformed_shard_is_a_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)
    assert main(["--variants", "ln", "--shard", text]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "e.g. --shard 1/4" in err


def sweep_rows() -> list[dict]:
    """What an unsharded sweep over two tasks x two seeds x three variants records, in order."""
    rng = np.random.default_rng(0)
    rows = []
    for t, s in itertools.product(["imagenet", "coco"], [0, 1]):
        for v in VARIANTS:
            rows.append(make_row(v, s, task=t, round_ms=list(rng.uniform(1, 2, 10)), top1=float(rng.uniform(90, 99)),
                                 log_ratios=None if v == "ln" else list(rng.normal(-0.05, 0.01, 10)),
                                 run_id="whole", recorded_at=f"2026-01-01T00:0{len(rows) % 10}:00+00:00"))
    return rows


def write_shards(tmp_path: Path, rows: list[dict], n: int) -> list[Path]:
    config = {"tasks": ["imagenet", "coco"], "variants": VARIANTS, "seeds": [0, 1], "profile": "smoke",
              "device": "cpu", "data_root": None}
    dirs = []
    for i in range(1, n + 1):
        d = tmp_path / f"shard-{i}"
        d.mkdir(parents=True)
        jsonio.write_atomic(d / "run.json", {"config": config | {"shard": {"index": i, "count": n}}})
        mine = set(shard_groups(config["tasks"], config["seeds"], Shard(i, n)))
        store = Store(d)
        for r in rows:
            if (r["task"], r["seed"]) in mine:
                store.append(r | {"run_id": f"shard{i}"})
        dirs.append(d)
    return dirs


def without_time(md: str) -> str:
    return re.sub(r" at \S+; do not edit", "", md)


def test_merge_reproduces_the_unsharded_rows_and_leaderboard(tmp_path: Path) -> None:
    rows = sweep_rows()
    for n in (2, 3):
        dirs = write_shards(tmp_path / f"n{n}", rows, n)
        assert main(["merge", *map(str, dirs[::-1]), "--out", str(tmp_path / f"merged{n}")]) == 0
        merged = list(read_rows(tmp_path / f"merged{n}" / "rows.jsonl"))
        assert [r["key"] for r in merged] == [r["key"] for r in rows]
        assert [{**r, "run_id": ""} for r in merged] == [{**r, "run_id": ""} for r in rows]
        board = (tmp_path / f"merged{n}" / "leaderboard.md").read_text()
        assert without_time(leaderboard_markdown(rows)) in without_time(board)


def test_merge_reports_duplicates_and_missing_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = write_shards(tmp_path, sweep_rows(), 2)
    report = merge_rows([dirs[0], dirs[0]])
    assert report.duplicates and all(len(d) == 2 for d in report.duplicates.values())
    assert len(report.missing) == 6  # the other shard's cells
    assert main(["merge", str(dirs[0]), str(dirs[0]), "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert "duplicate cell imagenet|ln|0|smoke|cpu|eager|fp32" in err
    assert "6 cell(s) of the sweep are in no shard" in err
    assert len(list(read_rows(tmp_path / "m" / "rows.jsonl"))) == 12  # nothing recorded is lost
    assert main(["merge", str(dirs[1]), "--out", str(tmp_path / "m")]) == 2  # never into a used folder


def test_merge_refuses_shards_from_different_machines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = write_shards(tmp_path, sweep_rows(), 2)
    path = dirs[1] / "rows.jsonl"
    other = [r | {"provenance": provenance(device={"type": "cpu", "driver": "555.1"})} for r in read_rows(path)]
    path.unlink()
    for r in other:
        Store(dirs[1]).append(copy.deepcopy(r))
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "driver None vs 555.1" in err and "identical runners" in err
    assert not (tmp_path / "m").exists()
    assert main(["merge", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "m")]) == 2


def test_a_real_shard_merges_compares_and_records_history_end_to_end(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """One real shard of a two-group sweep through the CLI (one cell), merged, compared, recorded;
    the other shard is left out, so merge must name the cell no shard recorded."""
    proc = run_main("--variants", "ln", "--tasks", "imagenet", "--seeds", "0,1", *FAST, "--shard", "2/2",
                    "--out", str(tmp_path / "s2"))
    assert proc.returncode == 0, proc.stderr
    assert [r["seed"] for r in read_rows(tmp_path / "s2" / "rows.jsonl")] == [1]  # sorted groups, round-robin
    hist = tmp_path / "history"
    assert main(["merge", str(tmp_path / "s2"), "--out", str(tmp_path / "m"),
                 "--compare", str(hist), "--history", str(hist), "--fail-on-regression"]) == 0
    err = capsys.readouterr().err
    assert "this run starts it" in err  # the first night has no history to compare with
    assert "1 cell(s) of the sweep are in no shard: imagenet|ln|0|smoke|cpu|eager|fp32" in err
    rows = list(read_rows(tmp_path / "m" / "rows.jsonl"))
    assert [(r["key"], r["status"]) for r in rows] == [("imagenet|ln|1|smoke|cpu|eager|fp32", "ok")]
    board = (tmp_path / "m" / "leaderboard.md").read_text()
    assert "(pareto-imagenet-smoke-cpu-embedded.png)" in board and "(trend-latency.png)" in board
    assert (tmp_path / "m" / "pareto-imagenet-smoke-cpu-embedded.png").exists()
    # a run compared with itself, and with the history that now holds it, never regresses
    for base in (tmp_path / "m", hist):
        assert main(["compare", str(tmp_path / "m"), str(base), "--fail-on-regression"]) == 0
        out = capsys.readouterr().out
        assert "0 regressed" in out and "imagenet/ln/s1" in out
        if base == tmp_path / "m":
            assert "0 incomparable" in out  # every metric really compared
