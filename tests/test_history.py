"""The history store: fingerprinted nights, bounded size, pandas, trends and step flags."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.cli.main import main
from suite.regression.compare import load_baseline
from suite.regression.history import HistoryConfig, append_night, find_steps, read_history, to_frame
from suite.regression.verdicts import RULES

from synth import Change, Noise, night


def fill(path: Path, nights: int, seed: int = 0, change_from: int | None = None, cfg=HistoryConfig()) -> None:
    rng = np.random.default_rng(seed)
    for n in range(nights):
        change = Change(latency={"un": 1.08}) if change_from is not None and n >= change_from else Change()
        append_night(path, night(rng, n, Noise(drift_sd=0.01), change), cfg)


def test_rows_carry_night_fingerprint_and_commit_and_read_with_pandas(tmp_path: Path) -> None:
    fill(tmp_path / "h", 3)
    rows = read_history(tmp_path / "h")
    assert len(rows) == 9 and len({r["night"] for r in rows}) == 3
    r = rows[0]
    assert r["commit"] == "c0ffee" and r["history_version"] == 1 and len(r["fingerprint_id"]) == 10
    assert r["fingerprint"]["device_name"] == "Test CPU" and r["fingerprint"]["torch"] == "2.14.1"
    raw = pd.read_json(tmp_path / "h" / "history.jsonl", lines=True)  # plain pandas works
    assert len(raw) == 9 and {"night", "key", "latency", "fingerprint_id"} <= set(raw.columns)
    frame, rules = to_frame(rows)
    assert {"latency", "ratio_to_ln", "top1", "memory", "throughput"} <= set(frame.columns)
    assert frame["latency"].between(1.0, 1.6).all() and rules["latency"].better == "lower"


def test_old_nights_are_thinned_and_the_oldest_dropped(tmp_path: Path) -> None:
    cfg = HistoryConfig(keep_raw=2, max_nights=4)
    fill(tmp_path / "h", 6, cfg=cfg)
    rows = read_history(tmp_path / "h")
    nights = list(dict.fromkeys(r["night"] for r in rows))
    assert len(nights) == 4
    for r in rows:
        kept = r["night"] in nights[-2:]
        assert ("samples_ms" in r["latency"]) == kept
        assert r["latency"]["round_ms"]  # what a verdict needs is never thinned
    with pytest.raises(Exception, match="keep_raw"):
        HistoryConfig(keep_raw=0)


def test_compare_against_the_history_uses_its_spread(tmp_path: Path) -> None:
    fill(tmp_path / "h", 15)
    base = load_baseline(tmp_path / "h")
    assert base.kind == "history" and len(base.nights) == 15
    rng = np.random.default_rng(99)
    from suite.regression.compare import compare_rows
    verdicts = compare_rows(night(rng, 99, Noise(drift_sd=0.01), Change(latency={"un": 1.06})), base)
    v = {(x.cell, x.metric): x for x in verdicts}
    assert v[("imagenet/un/s0", "ratio_to_ln")].verdict == "regressed"
    assert v[("imagenet/un/s0", "ratio_to_ln")].method == "history(14)"
    assert v[("imagenet/ln/s0", "latency")].verdict == "unchanged"


def test_find_steps_flags_a_persisting_step_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    noise = list(np.exp(rng.normal(0, 0.01, 20)))
    assert find_steps(noise, RULES["latency"]) == []
    stepped = noise[:16] + [v * 1.05 for v in noise[16:]]
    steps = find_steps(stepped, RULES["latency"])
    assert [(c, v) for c, v, _ in steps] == [(16, "regressed")]


def test_history_command_prints_trends_flags_the_step_and_plots(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path / "h", 12, change_from=9)
    assert main(["history", "--history", str(tmp_path / "h"), "--metric", "ratio_to_ln",
                 "--plot", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    un = next(line for line in out.splitlines() if "imagenet/un/s0" in line)
    rms = next(line for line in out.splitlines() if "imagenet/rms/s0" in line)
    assert re.search(r"\*\*regressed\*\* \+[78]\.\d%", un) and "commit c0ffee" in un and "3 night(s) since" in un
    assert rms.rstrip(" |").endswith("none")
    assert (tmp_path / "plots" / "trend-ratio_to_ln.png").stat().st_size > 1000
    assert main(["history", "--history", str(tmp_path / "h"), "--metric", "nope"]) == 2
    assert "use one of" in capsys.readouterr().err
    assert main(["history", "--history", str(tmp_path / "empty")]) == 2


def test_a_machine_wide_step_is_found_after_a_few_nights_and_noise_is_not() -> None:
    """Nightly latency with 1% (log sd) night-to-night drift: 14 quiet nights, then 3 more
    either unchanged or 5% slower. The figures are quoted in the README."""
    rng = np.random.default_rng(7)
    trials, found, false = 200, 0, 0
    for _ in range(trials):
        quiet = list(np.exp(rng.normal(0, 0.01, 17)))
        stepped = quiet[:14] + [v * 1.05 for v in quiet[14:]]
        false += any(v == "regressed" for _, v, _ in find_steps(quiet, RULES["latency"]))
        found += any(c >= 14 and v == "regressed" for c, v, _ in find_steps(stepped, RULES["latency"]))
    print(f"\nstep found after 3 nights: {found / trials:.1%}; false steps: {false / trials:.1%}")
    assert found / trials >= 0.9 and false / trials <= 0.01
