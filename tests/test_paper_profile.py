"""The paper profile: real data only, and a DDP cell under torchrun on CPU (gloo)."""
from __future__ import annotations

from pathlib import Path

import pytest

from suite.report.store import read_rows
from suite.task import TASKS

from conftest import run_main


@pytest.mark.parametrize("task", ["imagenet", "coco", "wikitext"])
def test_paper_profile_needs_real_data(task: str) -> None:
    proc = run_main("--tasks", task, "--variants", "ln", "--profile", "paper", "--out", "/nonexistent/x")
    assert proc.returncode == 2 and "runs on real data: pass --data-root" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("task", ["imagenet", "coco", "wikitext"])
def test_paper_recipes_are_the_published_configurations(tiny_all: Path, task: str) -> None:
    prof = TASKS.get(task)().profile("paper", tiny_all)
    assert prof.extra["hardware"] and prof.recipe.steps >= 80_000
    if task == "imagenet":  # DeiT: 300 epochs of 1.28M images at batch 1024, lr 5e-4 * batch / 512
        assert prof.model.startswith("deit_tiny") and prof.recipe.batch_size == 1024
        assert prof.recipe.lr == pytest.approx(5e-4 * 1024 / 512)
    if task == "wikitext":
        assert prof.model == "gpt2-small" and prof.extra["seq_len"] == 1024


@pytest.mark.slow
def test_paper_profile_trains_a_ddp_cell_under_torchrun_on_cpu(tiny_all: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # an LN-only first step leaves PRepBN's BN branch and eta without gradient: DDP must accept that;
    # rankboom fails on rank 1 while rank 0 waits for it in the gradient all-reduce: the cell must end
    # at once as an error row that names the rank (the timeout is only a guard against the old hang)
    proc = run_main("--tasks", "imagenet", "--variants", "prepbn,rankboom", "--profile", "paper", "--data-root",
                    str(tiny_all), "--device", "cpu", "--nproc-per-node", "2", "--sync-bn", "--max-steps", "2",
                    "--batch-size", "4", "--throughput-batch", "2", "--timing-seconds", "0.3",
                    "--set", "prepbn.warmup_steps=1", "--cell-timeout", "240", "--out", str(out),
                    plugins=("faulty_norms",))
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = {r["variant"]: r for r in read_rows(out / "rows.jsonl")}
    failed = rows["rankboom"]
    assert failed["status"] == "error" and failed["message"].startswith(
        "rank 1 failed: RuntimeError: rank 1 fails in training (test plugin)"), failed["message"]
    assert "timed out" not in failed["message"] and failed["train"] is None
    row = rows["prepbn"]
    assert row["status"] == "ok", row["message"]
    dist = row["distributed"]
    assert dist == {"world_size": 2, "backend": "gloo", "bn_statistics": "syncbn"}
    assert row["train"]["steps"] == 2 and row["profile"] == "paper"
    assert row["model"]["variant_kwargs"]["warmup_steps"] == 1
    assert row["dataset"]["kind"] == "real" and row["quality"]["top1"] is not None

