"""PRepBN: schedule endpoints, LN-only warm-up, eval form, counters, recalibration."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from suite import create_model, create_norm
from suite.variants.norms.prepbn import PRepBN

F64 = torch.float64


def bn_train_reference(x: torch.Tensor, m: PRepBN) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1])
    mean, var = rows.mean(0), rows.var(0, unbiased=False)
    bn = m.repbn.bn
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias + m.repbn.eta * x


def perturb(m: PRepBN) -> None:
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.5, 0.5)
        m.repbn.bn.weight.uniform_(0.5, 1.5)
        m.repbn.bn.bias.uniform_(-0.5, 0.5)
        m.repbn.eta.fill_(0.7)


def test_first_forward_is_ln_and_the_total_steps_plus_first_is_train_mode_repbn() -> None:
    total = 5
    m = create_norm("prepbn", 8, total_steps=total).double().train()
    perturb(m)
    xs = [torch.randn(3, 4, 8, dtype=F64) * 2 + 1 for _ in range(total + 2)]
    y1 = m(xs[0])
    torch.testing.assert_close(y1, F.layer_norm(xs[0], (8,), m.norm.weight, m.norm.bias, eps=1e-6),
                               rtol=1e-12, atol=1e-12)
    assert m.repbn.bn.num_batches_tracked == 1  # both branches run from the first forward
    for x in xs[1:total]:
        lam = m.lam()
        y = m(x)
        ln = F.layer_norm(x, (8,), m.norm.weight, m.norm.bias, eps=1e-6)
        assert 0 < lam < 1 and not torch.allclose(y, ln)
    assert m.lam() == 0.0 and int(m.num_forwards) == total
    x = xs[total]
    torch.testing.assert_close(m(x), bn_train_reference(x, m), rtol=1e-12, atol=1e-12)


def test_ln_only_warmup_keeps_bn_blind() -> None:
    m = create_norm("prepbn", 4, total_steps=3, warmup_steps=2).train()
    x = torch.randn(2, 3, 4)
    for _ in range(2):
        torch.testing.assert_close(m(x), F.layer_norm(x, (4,), m.norm.weight, m.norm.bias, eps=1e-6))
        assert int(m.repbn.bn.num_batches_tracked) == 0
    assert m.lam() == 1.0
    m(x)  # first forward after warm-up: lam = 1, BN starts accumulating
    assert int(m.repbn.bn.num_batches_tracked) == 1


def test_eval_is_bn_eval_plus_eta_x_and_counters_are_saved() -> None:
    m = create_norm("prepbn", 8, total_steps=2).double().train()
    perturb(m)
    for _ in range(4):
        m(torch.randn(5, 8, dtype=F64) * 3)
    m.eval()
    x = torch.randn(2, 6, 8, dtype=F64)
    bn = m.repbn.bn
    expected = F.batch_norm(x.reshape(-1, 8), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                            bn.eps).reshape(x.shape) + m.repbn.eta * x
    torch.testing.assert_close(m(x), expected, rtol=1e-12, atol=1e-12)
    clone = create_norm("prepbn", 8, total_steps=2).double()
    clone.load_state_dict(m.state_dict())
    assert int(clone.num_forwards) == 4 and clone.lam() == m.lam()


def test_recalibration_changes_only_bn_statistics() -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny_patch16_224", "prepbn",
                         variant_kwargs={"total_steps": 2, "recalibration_batches": 5},
                         img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        loss = model(torch.randn(4, 3, 16, 16)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = iter([torch.randn(8, 3, 16, 16) + 2.0 for _ in range(5)])
    PRepBN.after_training(model, batches, lambda b: model(b))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    stats = ("running_mean", "running_var", "num_batches_tracked")
    assert changed and all(k.endswith(stats) and ".repbn.bn." in k for k in changed)
    assert any(k.endswith("running_mean") for k in changed)
    assert model.training  # restored


def test_budget_rule_is_the_reference_fraction_for_vision_and_the_studied_one_for_lms_and_detection() -> None:
    assert PRepBN.budget_kwargs(375_300) == {"total_steps": 60_000}
    assert PRepBN.budget_kwargs(1000) == {"total_steps": 160}
    assert PRepBN.budget_kwargs(1000, family="lm") == {"total_steps": 400, "warmup_steps": 100}
    assert PRepBN.budget_kwargs(300, family="detection") == {"total_steps": 300}


def test_detection_cells_get_the_detection_rule_and_classification_keeps_its_own() -> None:
    from suite.sweep.identity import variant_kwargs
    from suite.task import TASKS
    from suite.variants import parse_variant
    for name, family, steps in (("coco", "detection", 300), ("imagenet", "vision", 160)):
        task = TASKS.get(name)()
        assert task.family == family
        profile = task.profiles(embedded=True)["smoke"]
        assert variant_kwargs(task, parse_variant("prepbn"), profile, {})["total_steps"] == steps
