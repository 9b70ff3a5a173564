"""Verdicts on synthetic rows: self-comparison, a slower run, fingerprints, status, seed spread, CLI."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from suite.cli.main import main
from suite.errors import UsageError
from suite.regression.compare import Baseline, compare_rows, load_baseline
from suite.regression.verdicts import RULES, Obs, Rule, judge, quality_rule
from suite.report.rows import SCHEMA_VERSION
from suite.report.store import Store

from synth import Change, Noise, make_row, night, provenance


def write_run(folder: Path, rows: list[dict]) -> Path:
    store = Store(folder)
    for r in rows:
        store.append(r)
    return folder


def by_cell(verdicts) -> dict[tuple[str, str], str]:
    return {(v.cell, v.metric): v.verdict for v in verdicts}


def test_a_run_compared_with_itself_never_regresses() -> None:
    rng = np.random.default_rng(3)
    for n in range(20):  # noisy nights, several seeds, every metric
        rows = night(rng, n, Noise(seeds=(0, 1, 2)))
        verdicts = compare_rows(rows, Baseline("self", "run", [rows]))
        assert {v.verdict for v in verdicts} == {"unchanged"}, [v for v in verdicts if v.verdict != "unchanged"]


def test_a_baseline_twice_as_fast_exits_1_with_fail_on_regression_and_names_the_cells(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    rng = np.random.default_rng(0)
    fast = write_run(tmp_path / "fast", night(rng, 0))
    slow = write_run(tmp_path / "slow", night(rng, 1, change=Change(latency={"ln": 2.0, "un": 2.0, "rms": 2.0})))
    assert main(["compare", str(slow), str(fast), "--fail-on-regression", "--out", str(tmp_path / "v")]) == 1
    out, err = capsys.readouterr()
    for cell in ("imagenet/ln/s0", "imagenet/un/s0", "imagenet/rms/s0"):
        assert cell in err and f"`{cell}`" in out  # stderr line and the table's "Regressed cells"
    assert "| imagenet/ln/s0  | latency " in out and "+10" in out  # +100%-ish
    assert "Regressed cells" in summary.read_text() and (tmp_path / "v" / "verdicts.json").exists()
    # without the flag the regression is reported but does not fail
    assert main(["compare", str(slow), str(fast)]) == 0
    # and the other way round it is an improvement
    assert main(["compare", str(fast), str(slow), "--fail-on-regression"]) == 0
    assert "improved" in capsys.readouterr().out


def test_fingerprint_mismatch_is_incomparable_but_a_new_commit_is_not() -> None:
    base = [make_row("ln"), make_row("un", log_ratios=[-0.05] * 20)]
    other_driver = copy.deepcopy(base)
    for r in other_driver:
        r["provenance"] = provenance(libraries={"torch": "2.15.0"})
    verdicts = compare_rows(other_driver, Baseline("b", "run", [base]))
    assert {v.verdict for v in verdicts} == {"incomparable"}
    assert all("torch 2.14.1 vs 2.15.0" in v.method for v in verdicts)
    new_commit = copy.deepcopy(base)
    for r in new_commit:
        r["provenance"]["git"]["commit"] = "another"
    assert {v.verdict for v in compare_rows(new_commit, Baseline("b", "run", [base]))} == {"unchanged"}
    schema = copy.deepcopy(base)
    for r in schema:
        r["schema_version"] = SCHEMA_VERSION + 1
    assert {v.verdict for v in compare_rows(schema, Baseline("b", "run", [base]))} == {"incomparable"}


def test_rows_name_the_cpu_kernels_simd_level_and_still_compare_with_rows_written_before_it() -> None:
    """Two CPUs of one model name ("AMD EPYC") can run torch's kernels at different SIMD levels, and
    their figures then differ in the last digits: the row says which it was. Older rows do not, so it
    stays out of the fingerprint: a nightly history recorded before it still compares."""
    import torch

    from suite.measure.env import device_description
    assert device_description(torch.device("cpu"))["cpu_isa"] == torch.backends.cpu.get_cpu_capability()
    base = [make_row("ln"), make_row("un", log_ratios=[-0.05] * 20)]
    now = copy.deepcopy(base)
    for r in now:
        r["provenance"]["device"]["cpu_isa"] = "AVX512"
    assert {v.verdict for v in compare_rows(now, Baseline("b", "run", [base]))} == {"unchanged"}


def test_status_changes_and_missing_cells() -> None:
    base = [make_row("ln"), make_row("un")]
    new = [make_row("ln", status="diverged"), make_row("un"), make_row("rms")]
    v = by_cell(compare_rows(new, Baseline("b", "run", [base])))
    assert v[("imagenet/ln/s0", "status")] == "regressed"
    assert v[("imagenet/rms/s0", "-")] == "incomparable"
    back = by_cell(compare_rows(base, Baseline("b", "run", [new])))
    assert back[("imagenet/ln/s0", "status")] == "improved"


def test_quality_is_judged_against_the_seed_spread_when_there_are_seeds() -> None:
    # seeds spread by ~1 point: a 1-point drop of one seed is noise; with one seed it is not
    base = [make_row("un", s, top1=t) for s, t in zip((0, 1, 2), (96.0, 97.0, 95.5))]
    new = [make_row("un", s, top1=t - 1.0) for s, t in zip((0, 1, 2), (96.0, 97.0, 95.5))]
    v = by_cell(compare_rows(new, Baseline("b", "run", [base])))
    assert v[("imagenet/un/s0", "top1")] == "unchanged"
    single = by_cell(compare_rows(new[:1], Baseline("b", "run", [base[:1]])))
    assert single[("imagenet/un/s0", "top1")] == "regressed"


def test_minimum_effect_and_noise_must_both_be_exceeded() -> None:
    lat = RULES["latency"]
    quiet = [Obs(0.0, 0.0001)] * 20  # a silent history: only the 3% minimum effect is left
    assert judge(lat, Obs(np.log(1.02), 0.0001), quiet, "cpu").verdict == "unchanged"
    assert judge(lat, Obs(np.log(1.04), 0.0001), quiet, "cpu").verdict == "regressed"
    loud = [Obs(float(x)) for x in np.random.default_rng(0).normal(0, 0.05, 20)]  # 5% night-to-night
    assert judge(lat, Obs(np.log(1.10)), loud, "cpu").verdict == "unchanged"
    top1 = Rule("top1", "higher", "points", 0.5)
    assert judge(top1, Obs(96.4), [Obs(97.0)], "cpu").verdict == "regressed"
    assert judge(top1, Obs(97.6), [Obs(97.0)], "cpu").verdict == "improved"
    with pytest.raises(UsageError, match="better must be"):
        Rule("x", "up", "log", 0.1)


def test_box_ap_is_judged_in_points_not_relative() -> None:
    rule = quality_rule("map", "higher")
    assert rule.scale == "points" and rule.min_effect == 0.5
    # 0.4 -> 0.2 mAP is a 50% relative drop but a 0.2-point one: noise for a detector near chance
    assert judge(rule, Obs(0.2), [Obs(0.4)], "cpu").verdict == "unchanged"
    assert judge(rule, Obs(31.0), [Obs(32.0)], "cpu").verdict == "regressed"
    assert quality_rule("ppl", "lower").scale == "log"


def test_baseline_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_baseline(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"no rows\.jsonl or history\.jsonl"):
        load_baseline(tmp_path)
    run = write_run(tmp_path / "run", [make_row("ln")])
    assert load_baseline(run).kind == "run" and load_baseline(run / "rows.jsonl").kind == "run"
    for argv in (["compare", str(run), str(tmp_path / "missing")],
                 ["--variants", "ln", "--compare", str(tmp_path / "missing")],
                 ["--variants", "ln", "--fail-on-regression"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and ("--compare" in err)
