from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.report.leaderboard import leaderboard_markdown, write_reports


def row(variant: str, seed: int, top1: float | None, status: str = "ok", shift: float = 0.0) -> dict:
    logs = list(np.random.default_rng(seed).normal(shift, 0.01, 50))
    return {
        "key": f"imagenet|{variant}|{seed}|smoke|cpu", "run_id": "r", "task": "imagenet", "variant": variant,
        "seed": seed, "profile": "smoke", "device": "cpu", "status": status,
        "message": "" if status == "ok" else "RuntimeError: boom",
        "quality": {} if top1 is None else {"top1": top1}, "metric_better": {"top1": "higher"},
        "primary_metric": "top1",
        "latency": {"p50_ms": 1.0 + shift, "ratio": {"baseline": "ln", "value": 1.0, "lo": 1.0, "hi": 1.0,
                                                     "log_ratios": logs}} if status == "ok" else None,
        "throughput": {"value": 100.0, "unit": "img/s"} if status == "ok" else None,
        "memory": {"peak_mb": 10.0}, "model": {"params": 1e6, "flops": 2e9}, "deploy": {"rel_err": 1e-7},
        "dataset": {"kind": "embedded", "label": "digits (embedded)"},
        "provenance": {"device": {"cpu": "Test CPU", "torch_threads": 2}},
    }


def test_baseline_first_seed_mean_std_arrows_and_embedded_label(tmp_path: Path) -> None:
    rows = [row("un", 0, 90.0, shift=0.1), row("ln", 0, 95.0), row("un", 1, 92.0, shift=0.1), row("ln", 1, 97.0),
            row("boom", 0, None, status="error")]
    md = write_reports(rows, tmp_path)
    assert md == (tmp_path / "leaderboard.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| ln ") and lines[2].startswith("| un ")
    assert "top-1 % ↑" in lines[0] and "p50 ms ↓" in lines[0] and "ratio to ln ↓ [95% CI]" in lines[0]
    assert "96.00 ± 1.41" in lines[1] and "91.00 ± 1.41" in lines[2]
    pooled = float(lines[2].split("|")[5].split("[")[0])
    assert abs(pooled - 1.105) < 0.005  # exp(0.1), pooled over both seeds' rounds
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "digits (embedded)" in md and "CPU: Test CPU" in md
    assert "`boom` seed 0: **error**: RuntimeError: boom" in md
    assert (tmp_path / "table.csv").exists()


def test_latest_row_per_cell_wins() -> None:
    md = leaderboard_markdown([row("ln", 0, 10.0, status="error"), row("ln", 0, 95.0)])
    assert "95.00" in md and "error" not in md


def test_rows_timed_on_a_busy_cpu_are_flagged() -> None:
    quiet, busy = row("ln", 0, 95.0), row("un", 0, 94.0)
    quiet["host_state"] = {"others_cpu_fraction": 0.03, "cpus": 2}
    busy["host_state"] = {"others_cpu_fraction": 0.55, "cpus": 2}
    md = leaderboard_markdown([quiet, busy])
    line = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "⚠ busy CPU" in line["un"] and "⚠" not in line["ln"]
    assert "other processes used 55% of the machine's CPU time" in md


def test_host_load_sees_a_competing_process() -> None:
    import subprocess
    import sys
    import time

    import psutil

    from suite.measure.timing_worker import HostLoad
    spin = "import time\nt = time.time()\nwhile time.time() - t < 2.0: pass"
    load = HostLoad()
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(psutil.cpu_count() or 1)]
    time.sleep(1.5)
    busy = load.finish()
    for p in procs:
        p.wait()
    assert busy["others_cpu_fraction"] > 0.5, busy  # one spinner per CPU: most of the machine


def test_seed_paired_verdicts_and_schedule_footnotes(tmp_path: Path) -> None:
    rows = []
    for seed, base in enumerate((95.0, 97.0, 96.0)):
        rows += [row("ln", seed, base), row("crms", seed, base), row("un", seed, base - 2.0 - 0.1 * seed),
                 row("up", seed, base + 1.0 + 0.05 * seed)]
    for r in rows:
        if r["variant"] == "un":
            r["model"]["schedule"] = {"used": {"warmup_iters": 11}, "reference": {"warmup_iters": 4000},
                                      "scaled": True}
    md = leaderboard_markdown(rows)
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    header = [c.strip() for c in lines["variant"].split("|")]
    assert "Δ top-1 % vs ln [95% CI]" in header and "verdict" in header
    assert "same within noise" in lines["crms"] and "+0.00 [+0.00, +0.00]" in lines["crms"]
    assert "| worse " in lines["un"] and "| better " in lines["up"] and "| baseline " in lines["ln"]
    assert "`un` ran with warmup_iters=11 (published: warmup_iters=4000)" in md
    assert "`up` ran with" not in md


def test_runtime_sections_and_the_deployment_matrix(tmp_path: Path) -> None:
    rows = []
    for runtime, shift in (("eager", 0.1), ("compile", -0.05)):
        for variant, s in (("ln", 0.0), ("un", shift)):
            r = row(variant, 0, 95.0, shift=s) | {"runtime": runtime, "precision": "fp32",
                                                  "runtime_info": {"build_s": 2.0}, "agreement": {"rel_err": 1e-7}}
            r["key"] += f"|{runtime}|fp32"
            rows.append(r)
    failed = row("un", 0, 95.0, status="error") | {"runtime": "onnxruntime", "precision": "fp32"}
    failed["key"] += "|onnxruntime|fp32"
    rows += [failed, row("ln", 0, 95.0) | {"runtime": "onnxruntime", "precision": "fp32", "key": "x|ln|onnx"}]
    md = write_reports(rows, tmp_path)
    assert "eager fp32 · data" in md and "compile fp32 · data" in md and "onnxruntime fp32 · data" in md
    matrix = md[md.index("## Deployment matrix: imagenet"):].splitlines()
    header = next(line for line in matrix if line.startswith("| variant"))
    assert "eager fp32" in header and "compile fp32" in header and "onnxruntime fp32" in header
    un = next(line for line in matrix if line.startswith("| un "))
    cells = [c.strip() for c in un.split("|")[2:-1]]
    assert cells[0].startswith("1.10") and cells[1].startswith("0.95") and cells[2] == "error"
    assert (tmp_path / "matrix-imagenet-smoke-cpu-embedded.png").stat().st_size > 1000
    assert "matrix-imagenet-smoke-cpu-embedded.png" in md


def test_the_baseline_is_the_one_the_rows_ratios_were_taken_to() -> None:
    """``--baseline un``: the timing group's ratios are to ``un``, and the section leads with it."""
    from suite.report.rows import Row, baseline_of

    from synth import make_row
    rows = [make_row(v, log_ratios=[0.0] * 20) for v in ("ln", "un", "rms")]
    for r in rows:
        r["latency"]["ratio"]["baseline"] = "un"
    assert baseline_of(map(Row, rows)) == "un"
    md = leaderboard_markdown(rows)
    assert "ratio to un" in md and "ratio to ln" not in md
    assert baseline_of(map(Row, [make_row("rms"), make_row("ln")])) == "ln"  # no ratios recorded: ln, if swept
