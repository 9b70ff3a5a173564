"""Every registered task, on its embedded data: the contract the harness relies on (like the norm conformance).

A task dropped into ``tasks/`` (or installed through ``normbench.tasks``) is picked up here
with no edit: profile, data identity, deterministic batches, a finite loss with gradients,
evaluation that returns the metrics it declares, a faithful deploy probe, timing inputs.
"""
from __future__ import annotations

import math

import pytest
import torch

from suite.measure.inputs import make_input
from suite.models.deploy import deploy, deploy_error
from suite.task import TASKS, DatasetInfo, Task, TaskNotOpen, to_device
from suite.variants import parse_variant


def tiny(task: Task):  # the smoke profile cut to a few steps
    return task.profile("smoke", None, max_steps=2)


@pytest.fixture(scope="module", params=TASKS.names())
def loaded(request: pytest.FixtureRequest):
    task = TASKS.get(request.param)()
    profile = tiny(task)
    assert task.open(None, profile) is task and task.prof is profile  # open binds the task and returns it
    return task


def test_profile_and_data_identity(loaded: Task) -> None:
    task = loaded
    profile, data = task.prof, task.data
    assert task.family in ("vision", "detection", "lm") and task.primary_metric in task.metrics
    assert set(task.metrics.values()) <= {"higher", "lower"}
    assert profile.recipe.steps == 2 and profile.throughput_batch >= 1 and profile.timing_s_per_model > 0
    info = data.info
    assert isinstance(info, DatasetInfo) and info.kind == "embedded" and "embedded" in info.label
    assert info.n_train > 0 and info.n_eval > 0 and len(info.fingerprint) >= 8
    task.check_data(None)  # embedded data needs no folder


def test_batches_are_fixed_by_the_seed(loaded: Task) -> None:
    task = loaded

    def first(seed: int):
        return next(task.train_batches(seed))

    a, b, c = first(0), first(0), first(1)
    flat = lambda batch: torch.cat([t.float().flatten() for t in _tensors(batch)])  # noqa: E731
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def test_loss_trains_evaluates_and_deploys(loaded: Task) -> None:
    task = loaded
    torch.manual_seed(0)
    model = task.build_model(parse_variant("ln"), {})
    model.train()
    batch = to_device(next(task.train_batches(0)), torch.device("cpu"))
    loss = task.loss(model, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    quality = task.evaluate(model.eval(), torch.device("cpu"))
    assert task.primary_metric in quality and all(math.isfinite(quality[m]) for m in task.metrics if m in quality)
    deployed = deploy(model)
    inputs = task.sample_inputs(4, torch.device("cpu"))
    assert deploy_error(task.deploy_probe(model), task.deploy_probe(deployed), inputs) < 1e-5
    with torch.inference_mode():
        task.forward(model, batch)  # what after-training hooks run
    spec = task.input_spec()
    with torch.inference_mode():
        deployed(make_input(spec, 2, "cpu"))  # timing inputs fit the deployed model
        deployed(task.eval_inputs(2, torch.device("cpu")))  # and so do the real inputs shaped like them


@pytest.mark.parametrize("name", TASKS.names())
def test_an_unopened_task_names_the_fix(name: str) -> None:
    task = TASKS.get(name)()
    assert task.data_identity(None)["kind"] == "embedded"  # the configuration needs no data
    with pytest.raises(TaskNotOpen, match=r"call task\.open\(data_root, profile\) first") as e:
        task.train_batches(0)
    assert "\n" not in str(e.value)
    for bound in (lambda: task.data, lambda: task.prof, lambda: task.shard, task.input_spec):
        with pytest.raises(TaskNotOpen):
            bound()
