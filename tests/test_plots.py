"""Pareto front and the plots linked from leaderboard.md."""
from __future__ import annotations

from pathlib import Path

from suite.report.leaderboard import write_reports
from suite.report.plots import pareto_front

from synth import make_row


def test_pareto_front_keeps_only_points_nothing_beats() -> None:
    # (latency, quality): c is slower and worse than a; d is slowest but best
    pts = [(1.0, 90.0), (0.8, 85.0), (1.2, 88.0), (2.0, 95.0), (0.8, 80.0)]
    assert sorted(pareto_front(pts)) == [0, 1, 3]
    assert sorted(pareto_front([(1.0, 20.0), (2.0, 15.0), (1.5, 25.0)], quality_higher=False)) == [0, 1]


def test_leaderboard_links_a_pareto_png_per_task(tmp_path: Path) -> None:
    rows = [make_row("ln", top1=97.0, round_ms=[1.3] * 5), make_row("un", top1=95.0, round_ms=[1.1] * 5),
            make_row("rms", top1=96.0, round_ms=[1.4] * 5, task="coco")]
    md = write_reports(rows, tmp_path)
    for task in ("imagenet", "coco"):
        name = f"pareto-{task}-smoke-cpu-embedded.png"
        assert f"]({name})" in md and (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert md == (tmp_path / "leaderboard.md").read_text()
