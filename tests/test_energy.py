"""Energy per inference from NVML's total energy counter, against a fake NVML.

The fake's counter advances at a known power (250 W) in steps of a known period (50 ms), on a
fake clock that the fake models move, so the expected millijoules per inference are exact: the
energy pass must find them, with a narrow interval; a counter that stops is flagged, never read as
0; a GPU without the counter (NotSupported), no pynvml and a CPU run give ``unsupported`` with the
reason. Rows with energy render a column and are judged by ``compare``; rows without (older rows,
CPU rows) validate, render and compare as before. The `gpu` test reads the real counter.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from suite.measure import energy as energy_mod
from suite.measure import gpu
from suite.measure.energy import EnergyMeter, Window, meter_for, summarize, unsupported

from conftest import TINY_INPUT, save_tiny_deployed
from synth import make_row, provenance

WATTS, TICK_S = 250.0, 0.05


class Clock:
    def __init__(self, t: float = 1000.0123) -> None:   # an arbitrary phase against the ticks
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeNvml:
    """The part of pynvml the suite's energy reading uses: a counter in mJ that steps every
    ``tick_s`` by ``watts`` times the step (``supported=False``: NotSupported, as before Volta);
    ``stall(seconds)`` holds it for a while (then, at a tick, it catches up, as a driver's would)."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    def __init__(self, clock: Any, watts: float = WATTS, tick_s: float = TICK_S, supported: bool = True) -> None:
        self.clock, self.watts, self.tick_s, self.supported = clock, watts, tick_s, supported
        self.held_until: float | None = None
        self.held_value = 0
        self.reads = 0

    def stall(self, seconds: float) -> None:
        self.held_value = self._value(self.clock())
        self.held_until = math.ceil((self.clock() + seconds) / self.tick_s) * self.tick_s   # resumes at a tick

    def _value(self, t: float) -> int:
        return int(math.floor(t / self.tick_s) * self.tick_s * self.watts * 1e3)

    # pynvml's functions
    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        raise self.NVMLError("no such UUID")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if not self.supported:
            raise self.NVMLError_NotSupported("Not Supported")
        self.reads += 1
        t = self.clock()
        if self.held_until is not None and t < self.held_until:
            return self.held_value
        return self._value(t)


def fake_nvml(monkeypatch: pytest.MonkeyPatch, fake: Any) -> None:
    monkeypatch.setattr(gpu, "pynvml", fake)
    monkeypatch.setattr(gpu, "_initialised", False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def model(clock: Clock, ms: float) -> Any:
    """A fake model whose call takes ``ms`` on the fake clock."""
    def call() -> None:
        clock.t += ms / 1e3
    return call


def validate_part(part: dict, needed: bool = True) -> None:
    """``part`` against the schema's ``energy`` entry; without jsonschema (the GPU image lacks it) the
    test skips, or (``needed=False``) goes on unchecked."""
    import importlib.util
    if not needed and importlib.util.find_spec("jsonschema") is None:
        return
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the GPU image lacks it)")
    from suite.report.rows import schema
    doc = schema()
    jsonschema.validate(part, {"$defs": doc["$defs"], "$ref": "#/$defs/energy"})


def test_mj_per_inference_comes_from_the_counter_at_a_known_power(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    fake_nvml(monkeypatch, FakeNvml(clock))
    read, why = gpu.energy_counter(0)
    assert read is not None and why == ""
    meter = EnergyMeter(read, clock=clock)
    got = meter.measure({"ln": model(clock, 3.0), "un": model(clock, 2.0)}, windows=5, baseline="ln")
    for name, ms in (("ln", 3.0), ("un", 2.0)):
        e = got[name]
        validate_part(e)
        expected = WATTS * ms  # W x ms = mJ
        assert e["status"] == "ok" and e["windows"] == 5 and e["flagged"] == 0 and e["idle_included"]
        assert e["mj_per_inference"] == pytest.approx(expected, rel=0.015)
        assert e["lo"] <= e["mj_per_inference"] <= e["hi"] and (e["hi"] - e["lo"]) / expected < 0.03
        assert e["lo"] <= expected * 1.015 and e["hi"] >= expected * 0.985
        assert e["power_w"] == pytest.approx(WATTS, rel=0.015) and e["ms_per_inference"] == pytest.approx(ms)
        assert e["update_ms"] == pytest.approx(TICK_S * 1e3, rel=0.05)
        # every window lasted at least its minimum and four whole update periods of the counter
        assert e["seconds"] / e["windows"] >= max(meter.min_s, 4 * TICK_S)
        assert e["inferences"] == pytest.approx(e["seconds"] / (ms / 1e3), rel=1e-6)
        assert len(e["window_mj"]) == 5
    assert got["un"]["ratio"]["value"] == pytest.approx(2 / 3, rel=0.02) and got["un"]["ratio"]["baseline"] == "ln"
    assert got["ln"]["ratio"]["value"] == pytest.approx(1.0)


def test_a_slow_call_and_a_long_tick_still_give_the_known_power() -> None:
    """A call of 37 ms against a 100 ms counter: the window waits for enough updates."""
    clock = Clock(5.55)
    fake = FakeNvml(clock, watts=80.0, tick_s=0.1)
    meter = EnergyMeter(lambda: fake.nvmlDeviceGetTotalEnergyConsumption("h"), clock=clock, max_s=3.0)
    e = meter.measure({"big": model(clock, 37.0)}, windows=3)["big"]
    assert e["status"] == "ok" and e["windows"] == 3
    assert e["mj_per_inference"] == pytest.approx(80.0 * 37.0, rel=0.05)
    assert e["seconds"] / 3 >= 0.4   # at least four updates of 100 ms apart


def test_a_counter_that_does_not_advance_is_flagged_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    fake = FakeNvml(clock)
    # the counter holds still for 2 s from the first call of `un` (its first window), then catches up
    stall = model(clock, 2.0)
    first = {"done": False}

    def un() -> None:
        if not first["done"]:
            first["done"] = True
            fake.stall(2.0)
        stall()

    meter = EnergyMeter(lambda: fake.nvmlDeviceGetTotalEnergyConsumption("h"), clock=clock)
    got = meter.measure({"ln": model(clock, 2.0), "un": un}, windows=4, baseline="ln")
    e = got["un"]
    validate_part(e)
    assert e["status"] == "ok" and e["windows"] == 3 and e["flagged"] == 1
    assert e["flags"] == [f"the counter did not advance in {meter.max_s:.2f} s"]
    assert e["window_mj"][0] is None and all(x is not None for x in e["window_mj"][1:])
    assert e["mj_per_inference"] == pytest.approx(WATTS * 2.0, rel=0.015)
    assert got["un"]["ratio"]["rounds"] == 3   # the discarded window's round is left out of the pairing
    # a counter that never moves: two dead windows end the pass, and no figure is given
    frozen = EnergyMeter(lambda: 123_456, clock=clock, max_s=0.5)
    calls = {"ln": model(clock, 2.0), "un": model(clock, 2.0)}
    t0 = clock.t
    dead = frozen.measure(calls, windows=5, baseline="ln")
    assert clock.t - t0 == pytest.approx(2 * 0.5, abs=0.01)   # stopped after two windows
    for part in dead.values():
        validate_part(part)
        assert part["status"] == "invalid" and "mj_per_inference" not in part
        assert "the counter did not advance" in part["reason"]
    assert dead["ln"]["flagged"] == 1 and "two windows in a row" in dead["un"]["reason"]


def test_a_counter_that_went_backwards_or_moved_once_is_flagged() -> None:
    w = Window(iters=10, seconds=1.0, updates=1, flag="the counter advanced only once in 1.00 s")
    assert w.mj_per_inference is None
    values = iter([1000, 1000, 500, 500, 500, 500])
    clock = Clock()
    meter = EnergyMeter(lambda: next(values, 500), clock=clock, max_s=0.01)
    got = meter.window(model(clock, 2.0))
    assert got.flag is not None and got.flag.startswith("the counter went backwards")
    # a counter that fails mid-pass: no figure for anyone, and the group's timing goes on
    fake = FakeNvml(clock)

    def lost() -> int:
        if fake.reads > 200:
            raise FakeNvml.NVMLError("GPU is lost")
        return fake.nvmlDeviceGetTotalEnergyConsumption("h")

    failed = EnergyMeter(lost, clock=clock).measure({"ln": model(clock, 2.0), "un": model(clock, 2.0)}, windows=3)
    assert all(e == {"status": "invalid", "reason": "the energy pass failed: NVMLError: GPU is lost"}
               for e in failed.values())


def test_not_supported_or_no_nvml_gives_unsupported_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, FakeNvml(Clock(), supported=False))
    read, why = gpu.energy_counter(0)
    assert read is None and "Not Supported" in why and "Volta" in why
    meter, why2 = meter_for(torch.device("cuda", 0))
    assert meter is None and why2 == why
    part = unsupported(why)
    validate_part(part)
    assert part == {"status": "unsupported", "reason": why}
    monkeypatch.setattr(gpu, "pynvml", None)
    assert "pynvml" in gpu.energy_counter(0)[1]
    meter, why = meter_for(torch.device("cpu"))
    assert meter is None and why.startswith("cpu run")
    # the schema refuses an unsupported part without a reason or with a figure, and an energy of 0
    for bad in ({"status": "unsupported"}, {"status": "unsupported", "reason": "x", "mj_per_inference": 1.0},
                {"status": "ok", "mj_per_inference": 0.0, "lo": 0, "hi": 0, "power_w": 0, "windows": 1,
                 "window_mj": [0]}):
        with pytest.raises(Exception, match=r"required|should not be valid|less than or equal|is not valid"):
            validate_part(bad)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two tiny deployed models, saved once for the module's timing groups."""
    root = tmp_path_factory.mktemp("deployed")
    return {n: str(save_tiny_deployed(root / n, n)) for n in ("ln", "un")}


def _group(tmp_path: Path, models: dict[str, str]) -> dict:
    from suite.measure.jobs import TimingJob
    return TimingJob(models=models, baseline="ln", device="cpu", runtime="eager", precision="fp32",
                     input_spec=TINY_INPUT, unit="items/s", out=str(tmp_path / "timing.json"),
                     timing={"budget_s": 0.5, "throughput_batch": 4, "warmup_s": 0.05, "block_s": 0.01}).as_json()


def _rows(out: dict) -> list[dict]:
    from suite.measure.jobs import TimingResult
    from suite.report.rows import RowKey, build_row
    result = TimingResult.from_json(out)
    rows = []
    for v, m in result.models.items():
        key = RowKey(task="deploy-bench:tiny", variant=v, norm=v, attention=None, seed=0, profile="32px",
                     device="cpu", config_id=f"c-{v}")
        rows.append(build_row(key, run_id="r", status="ok", provenance=provenance(), recorded_at="2026-01-01T00:00:00Z",
                              measured=m, timing=result, dataset={"kind": "embedded", "path": None, "label": "x"}))
    return rows


def test_a_cpu_run_row_has_energy_unsupported_with_the_reason(tmp_path: Path, deployed: dict[str, str]) -> None:
    from suite.measure import timing_worker
    from suite.report.leaderboard import ENERGY_COLUMN, leaderboard_markdown
    out = timing_worker.run_group(_group(tmp_path, deployed))
    for m in out["models"].values():
        assert m["energy"]["status"] == "unsupported" and "cpu run" in m["energy"]["reason"]
    rows = _rows(out)
    assert all(r["energy"]["status"] == "unsupported" for r in rows)
    assert [r["config_id"] for r in rows] == ["c-ln", "c-un"]   # measurement fields never enter the id
    for r in rows:   # (bench-like rows: no training nor quality, so only their energy is checked here)
        validate_part(r["energy"])
    assert ENERGY_COLUMN not in leaderboard_markdown(rows)   # nothing supported: no column


def test_a_timing_group_with_a_fake_counter_reports_mj_beside_latency(tmp_path: Path, deployed: dict[str, str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's whole path on the CPU, with a 250 W fake counter on the real clock."""
    import time

    from suite.measure import timing_worker
    from suite.report.leaderboard import ENERGY_COLUMN, leaderboard_markdown, leaderboard_sections
    fake = FakeNvml(time.perf_counter)
    monkeypatch.setattr(timing_worker, "meter_for", lambda dev: (
        EnergyMeter(lambda: fake.nvmlDeviceGetTotalEnergyConsumption("h")), ""))
    out = timing_worker.run_group(_group(tmp_path, deployed))
    for m in out["models"].values():
        e = m["energy"]
        assert e["status"] == "ok" and e["windows"] == 3 and e["flagged"] == 0
        assert e["power_w"] == pytest.approx(WATTS, rel=0.05)
        assert e["mj_per_inference"] == pytest.approx(WATTS * e["ms_per_inference"], rel=0.08)
    rows = _rows(out)
    for r in rows:
        validate_part(r["energy"])
    md = leaderboard_markdown(rows)
    assert ENERGY_COLUMN in md and "whole-board GPU energy" in md
    (sec,) = leaderboard_sections(rows)
    for line in sec.lines:
        value, interval = line[ENERGY_COLUMN].split(" ", 1)
        assert float(value) > 0 and interval.startswith("[")


def _validate_rows(rows: list[dict]) -> None:
    pytest.importorskip("jsonschema", reason="jsonschema is not installed (the GPU image lacks it)")
    from suite.report.rows import validate
    for r in rows:
        validate(json.loads(json.dumps(r)))


def with_energy(row: dict, mj: float, n: int = 12, spread: float = 0.01, status: str = "ok") -> dict:
    """``row`` with an energy part from ``n`` windows around ``mj`` (as the energy pass summarizes them)."""
    out = copy.deepcopy(row)
    if status != "ok":
        out["energy"] = unsupported("NVML: Not Supported") if status == "unsupported" else \
            {"status": status, "reason": "no usable energy window", "windows": 0, "flagged": 3}
        return out
    ws = [Window(iters=100, seconds=0.5, updates=6, power_w=mj * (1 + spread * ((i % 3) - 1)) * 100 / 0.5 / 1e3,
                 update_s=0.05) for i in range(n)]
    out["energy"] = summarize({row["variant"]: ws})[row["variant"]]
    return out


def test_old_rows_without_energy_validate_render_and_compare_as_before() -> None:
    from suite.regression.compare import Baseline, compare_rows
    from suite.report.leaderboard import ENERGY_COLUMN, leaderboard_markdown
    from suite.report.store import read_rows
    # rows written by the suite at ad23643, before energy existed (tests/test_compat.py's fixture)
    written = list(read_rows(Path(__file__).parent / "fixtures" / "compat-ad23643" / "night3-rows.jsonl"))
    assert written and all("energy" not in r for r in written)
    _validate_rows(written)
    md = leaderboard_markdown(written)
    assert ENERGY_COLUMN not in md and "mJ" not in md
    verdicts = compare_rows(written, Baseline("old", "run", [written]))
    assert verdicts and all(v.metric != "energy" for v in verdicts) and {v.verdict for v in verdicts} == {"unchanged"}
    # GPU rows of before too (no energy key at all), then new rows measured with energy against them
    old = [{k: x for k, x in make_row(v, device="cuda").items() if k != "energy"} for v in ("ln", "un")]
    _validate_rows(old)
    assert ENERGY_COLUMN not in leaderboard_markdown(old)
    # new rows measured with energy against that old baseline: every old metric judged, energy incomparable
    new = [with_energy(r, 500.0) for r in old]
    _validate_rows(new)
    verdicts = compare_rows(new, Baseline("old", "run", [old]))
    energy = [v for v in verdicts if v.metric == "energy"]
    assert [v.verdict for v in energy] == ["incomparable"] * 2
    assert {v.metric for v in verdicts} >= {"latency", "memory", "top1"}


def test_energy_is_judged_like_latency_lower_is_better() -> None:
    from suite.regression.compare import Baseline, compare_rows
    base = [with_energy(make_row(v, device="cuda"), 500.0) for v in ("ln", "un")]
    worse = [with_energy(make_row("ln", device="cuda"), 500.0 * 1.25),
             with_energy(make_row("un", device="cuda"), 500.0 * 1.002)]
    got = {(v.cell, v.metric): v for v in compare_rows(worse, Baseline("b", "run", [base]))}
    assert got[("imagenet/ln/s0", "energy")].verdict == "regressed"
    assert got[("imagenet/ln/s0", "energy")].change.startswith("+25.")
    assert got[("imagenet/un/s0", "energy")].verdict == "unchanged"
    better = [with_energy(make_row("ln", device="cuda"), 500.0 * 0.7)]
    got = {v.metric: v for v in compare_rows(better, Baseline("b", "run", [base]))}
    assert got["energy"].verdict == "improved"
    # measured before, unsupported now: said, not silently dropped
    gone = [with_energy(make_row("ln", device="cuda"), 0, status="unsupported")]
    got = {v.metric: v for v in compare_rows(gone, Baseline("b", "run", [base]))}
    assert got["energy"].verdict == "incomparable" and "Not Supported" in got["energy"].method


def test_the_leaderboard_shows_mj_per_inference_only_where_a_row_has_it() -> None:
    from suite.report.leaderboard import ENERGY_COLUMN, leaderboard_sections
    rows = [with_energy(make_row("ln", device="cuda"), 512.0), with_energy(make_row("un", device="cuda"), 0,
                                                                          status="unsupported"),
            with_energy(make_row("ln", task="wikitext", device="cuda"), 0, status="unsupported"),
            make_row("un", task="wikitext", device="cuda")]
    sections = {s.task: s for s in leaderboard_sections(rows)}
    lines = {ln["variant"]: ln for ln in sections["imagenet"].lines}
    assert lines["ln"][ENERGY_COLUMN].startswith("512 [") and lines["un"][ENERGY_COLUMN] == "unsupported"
    keys = list(lines["ln"])
    assert keys.index(ENERGY_COLUMN) == keys.index("ratio to ln ↓ [95% CI]") + 1   # beside latency
    assert any("whole-board GPU energy" in n for n in sections["imagenet"].notes)
    assert all(ENERGY_COLUMN not in ln for ln in sections["wikitext"].lines)
    flagged = with_energy(make_row("ln", device="cuda"), 512.0)
    flagged["energy"] |= {"flagged": 1, "flags": ["the counter did not advance in 1.50 s"]}
    (sec,) = leaderboard_sections([flagged])
    assert any("1 energy window(s) discarded (the counter did not advance" in n for n in sec.notes)


def test_the_gpu_check_summary_tables_the_energy_of_its_bench_rows(tmp_path: Path) -> None:
    from suite.bench.gpu_check import energy_summary
    folder = tmp_path / "deploy-bench-deit-tiny-patch16-224-eager"
    folder.mkdir()
    rows = []
    for v, mj in (("ln", 812.0), ("un", 790.0)):
        r = with_energy(make_row(v, device="cuda"), mj) | {"task": "deploy-bench:deit_tiny_patch16_224",
                                                           "runtime": "eager", "precision": "bf16"}
        rows.append(r)
    rows.append(with_energy(make_row("prepbn", device="cuda"), 0, status="unsupported")
                | {"task": "deploy-bench:deit_tiny_patch16_224"})
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = "\n".join(energy_summary(tmp_path))
    assert "a figure in 2 of 3 rows; the others unsupported: NVML: Not Supported" in text
    assert "deit_tiny_patch16_224" in text and "| eager bf16" in text and "812 [" in text
    assert "unsupported" in text.split("| prepbn")[1].splitlines()[0]
    assert energy_summary(tmp_path / "nothing") == []


def test_windows_grow_with_the_budget_within_limits() -> None:
    assert energy_mod.windows_for(0.2) == 3 and energy_mod.windows_for(10) == 5 and energy_mod.windows_for(60) == 8


@pytest.mark.gpu
def test_the_real_counter_gives_a_plausible_energy_per_inference() -> None:
    meter, why = meter_for(torch.device("cuda", 0))
    if meter is None:
        assert why, "no meter and no reason"
        pytest.skip(f"no NVML energy counter here: {why}")
    x = torch.randn(2048, 2048, device="cuda")
    e = meter.measure({"matmul": lambda: x @ x, "small": lambda: x[:256, :256] @ x[:256, :256]}, windows=3,
                      baseline="matmul")
    for part in e.values():
        validate_part(part, needed=False)
        assert part["status"] == "ok", part
        assert 5 < part["power_w"] < 2000 and part["mj_per_inference"] > 0
        assert part["lo"] is None or part["lo"] <= part["hi"]
        assert part["update_ms"] is not None and part["update_ms"] < 1000
    assert e["small"]["mj_per_inference"] < e["matmul"]["mj_per_inference"]
