"""Training checkpoints: a cell killed in training continues from its last checkpoint and ends exactly
as if it had never been killed; a checkpoint of another cell is not loaded; a finished cell keeps none."""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from suite import jsonio
from suite.cli.run import parser, run_config
from suite.report.store import read_rows
from suite.sweep import train as train_module
from suite.sweep.cell import main as cell_main
from suite.sweep.checkpoint import FILE, FOLDER, PAPER_EVERY, Checkpointer, interval_for
from suite.sweep.config import CellSpec, RunConfig
from suite.sweep.identity import cell_id, cell_plan
from suite.sweep.options import Interval
from suite.sweep.train import TrainStats, train

from conftest import FAST, plugin_env, run_forked, run_main


class Killed(Exception):
    """Stands for the SIGKILL of ``suite.faults.point`` in a training run in this process."""


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: one torch thread is as fast, and does not spin against the other test worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(cell_dir: Path, every: Interval | None, monkeypatch: pytest.MonkeyPatch,
           kill_at: int | None = None) -> tuple[torch.nn.Module, TrainStats]:
    """A smoke cell's training as ``run_cell`` does it (PRepBN: running statistics and a step counter in
    buffers), killed after optimizer step ``kill_at`` when given."""
    from suite.models.artifact import build
    from suite.sweep.cell import learning_curve, seed_everything
    from suite.sweep.identity import variant_kwargs
    from suite.task import TASKS
    from suite.variants import parse_variant
    from suite.variants.base import TrainingContext, before_training
    task = TASKS.get("imagenet")()
    profile = task.profile("smoke", None, max_steps=12)
    task.open(None, profile)
    variant = parse_variant("prepbn")
    seed_everything(0)
    model = build(task.model_args(variant, variant_kwargs(task, variant, profile, {})))
    before_training(variant.norm_cls, model, TrainingContext(steps=12, family=task.family))
    steps = iter(range(1, 10**6))

    def point(name: str) -> None:
        if next(steps) == kill_at:
            raise Killed

    monkeypatch.setattr(train_module.faults, "point", point)
    cpu = torch.device("cpu")
    stats = train(model, task, cpu, 0, show=False, curve=learning_curve(task, model, cpu),
                  checkpoint=Checkpointer(cell_dir, 0, "cell-a", every))
    return model, stats


def _saved_step(cell_dir: Path, rank: int = 0) -> int:
    return int(torch.load(cell_dir / FOLDER / FILE.format(rank=rank), weights_only=True)["step"])


def test_training_killed_after_a_checkpoint_ends_bitwise_as_if_never_killed(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    model, plain = _train(tmp_path / "plain", None, monkeypatch)
    assert plain.resumed_from == [] and not (tmp_path / "plain" / FOLDER).exists()  # off: nothing written
    cell = tmp_path / "cell"
    with pytest.raises(Killed):
        _train(cell, Interval(steps=4), monkeypatch, kill_at=10)
    assert _saved_step(cell) == 8
    resumed_model, resumed = _train(cell, Interval(steps=4), monkeypatch)
    assert resumed.resumed_from == [8] and _saved_step(cell) == 12  # saved once more after the last step
    assert (resumed.steps, resumed.final_loss, resumed.loss_curve, resumed.curve) == \
        (plain.steps, plain.final_loss, plain.loss_curve, plain.curve)
    assert resumed.time_s > 0 and resumed.step_ms > 0
    a, b = model.state_dict(), resumed_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # buffers included
    # killed again after the end of training (in the evaluation), it does not train again
    again_model, again = _train(cell, Interval(steps=4), monkeypatch, kill_at=1)
    assert again.resumed_from == [8, 12] and again.final_loss == plain.final_loss
    assert all(torch.equal(a[k], again_model.state_dict()[k]) for k in a)


def test_a_checkpoint_of_another_cell_is_deleted_not_loaded(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    layer = torch.nn.Linear(2, 2)
    Checkpointer(tmp_path, 0, "cell-a", Interval(steps=1)).save(3, {"model": layer}, {"step": 3})
    assert Checkpointer(tmp_path, 0, "cell-a", None).load() is not None  # turned off: still resumed from
    assert Checkpointer(tmp_path, 0, "cell-b", Interval(steps=1)).load() is None
    assert not (tmp_path / FOLDER / FILE.format(rank=0)).exists()
    assert "of another cell plan" in capsys.readouterr().err
    (tmp_path / FOLDER / FILE.format(rank=0)).write_bytes(b"not a checkpoint")
    assert Checkpointer(tmp_path, 0, "cell-a", None).load() is None
    assert capsys.readouterr().err.count("\n") == 1


def test_a_save_killed_half_way_leaves_the_checkpoint_before(tmp_path: Path) -> None:
    layer = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(tmp_path, 0, "cell-a", Interval(steps=1))
    ckpt.save(3, {"model": layer}, {"step": 3})
    ckpt.save(6, {"model": layer}, {"step": 6})
    assert sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == ["rank-0.pt"]  # the one before is let go
    # killed between moving the last one aside and putting the new one in place
    ckpt.path.rename(ckpt.previous)
    (tmp_path / FOLDER / ".rank-0.pt.123.tmp").write_bytes(b"half a file")
    saved = ckpt.load()
    assert saved is not None and saved.step == 6 and saved.progress == {"step": 6}
    assert sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == ["rank-0.prev.pt"]


def test_when_a_checkpoint_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Checkpointer("x", 0, "c", Interval(steps=4))
    assert [s for s in range(1, 13) if steps.due(s)] == [4, 8, 12] and steps.due(5, final=True)
    off = Checkpointer("x", 0, "c", None)
    assert not any(off.due(s, final=s == 12) for s in range(1, 13))
    minutes = Checkpointer("x", 0, "c", Interval(minutes=30))
    assert not minutes.due(1)
    monkeypatch.setattr(minutes, "_last", minutes._last - 30 * 60)
    assert minutes.due(2)
    assert interval_for(None, "paper") == interval_for(None, "paper-swin-t") == PAPER_EVERY == Interval(minutes=30)
    assert interval_for(None, "smoke") is None and interval_for(Interval(steps=5), "paper") == Interval(steps=5)


@pytest.mark.parametrize("text", ["0", "abc", "-3", "0m"])
def test_a_bad_interval_is_one_line(text: str) -> None:
    proc = run_main("--tasks", "wikitext", "--variants", "ln", "--checkpoint-every", text)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "--checkpoint-every" in proc.stderr, proc.stderr


def test_an_interval_parses_travels_in_the_cell_spec_and_leaves_the_cell_id_alone(tmp_path: Path) -> None:
    def config(*extra: str) -> RunConfig:
        return run_config(parser().parse_args(["--tasks", "wikitext", "--variants", "ln", "--device", "cpu",
                                               "--out", str(tmp_path / "run"), *extra]))
    assert config("--checkpoint-every", "5").training.checkpoint_every == Interval(steps=5)
    cfg = config("--checkpoint-every", "2.5m")
    assert cfg.training.checkpoint_every == Interval(minutes=2.5) and config().training.checkpoint_every is None
    spec = cfg.cell("wikitext", "ln", 0)
    assert CellSpec.from_json(spec.as_json()).training.checkpoint_every == Interval(minutes=2.5)
    assert cell_id(cell_plan(spec)) == cell_id(cell_plan(config().cell("wikitext", "ln", 0)))


def test_a_sweep_killed_in_training_resumes_the_cell_from_its_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = plugin_env() | {"NORMBENCH_FAULT": "train@15", "NORMBENCH_FAULT_MARK": str(tmp_path / "mark")}
    killed = run_forked("--tasks", "wikitext", "--variants", "ln", "--max-steps", "20", "--threads", "1",
                        *FAST[2:], "--checkpoint-every", "10", "--inline", "--out", str(out), env=env,
                        folder=tmp_path / f"cli-{uuid.uuid4().hex[:8]}")
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILLed in the 15th step
    cell = out / "cells" / "wikitext-ln-s0"
    assert _saved_step(cell) == 10 and not (cell / "result.json").exists()
    resumed = run_main("--resume", "--out", str(out))  # the fault is not armed in this process
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (row,) = read_rows(out / "rows.jsonl")
    assert row["status"] == "ok" and row["train"]["resumed_from"] == [10]
    assert not (cell / FOLDER).exists()  # a finished cell keeps no checkpoint
    # the same cell trained in one go, without checkpoints, in this process
    spec = CellSpec.from_json(jsonio.read(cell / "spec.json"))
    plain = tmp_path / "plain"
    plain.mkdir()
    jsonio.write_atomic(plain / "spec.json", dataclasses.replace(
        spec, cell_dir=str(plain), training=dataclasses.replace(spec.training, checkpoint_every=None)).as_json())
    assert cell_main(str(plain / "spec.json")) == 0
    got, ref = jsonio.read(cell / "result.json"), jsonio.read(plain / "result.json")
    assert ref["status"] == "ok" and ref["train"]["resumed_from"] == [] and ref["cell_id"] == got["cell_id"]
    assert got["quality"] == ref["quality"] == row["quality"]
    for key in ("steps", "final_loss", "loss_curve", "curve"):
        assert got["train"][key] == ref["train"][key], key
