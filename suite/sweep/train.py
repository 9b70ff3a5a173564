"""The one training loop every task uses: AdamW (timm param groups), warm-up + cosine."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from tqdm import tqdm

from suite import faults
from suite.env import interactive
from suite.errors import Diverged
from suite.sweep.distributed import mean_across
from suite.task import Task, to_device


class CurvePoints(TypedDict):
    """The learning curve as training measures it (the cell adds its metric and eval items)."""
    steps: list[int]
    train_loss: list[float]
    values: list[float]


@dataclass
class TrainStats:
    steps: int
    time_s: float
    step_ms: float          # median wall time of an optimizer step (forward, backward, update)
    final_loss: float
    loss_curve: list[float]  # mean loss per 1/20th of the run
    amp: str | None = None   # autocast dtype of the forward pass (CUDA), None in full precision
    curve: CurvePoints | None = None  # the learning curve: train loss and eval metric at ~10 points


#: how many points of the run the learning curve evaluates at
CURVE_POINTS = 10


def curve_steps(steps: int, points: int = CURVE_POINTS) -> list[int]:
    """The optimizer steps (1-based) after which the learning curve is evaluated, evenly spread."""
    return sorted({max(1, round(k * steps / points)) for k in range(1, points + 1)})


def train(model: nn.Module, task: Task, device: torch.device, seed: int,
          desc: str = "train", runner: nn.Module | None = None, show: bool = True,
          amp: str | None = None, curve: Callable[[], float] | None = None) -> TrainStats:
    """Train ``model`` in place on the batches and loss of ``task`` (an open task: its profile's
    recipe sets the schedule); ``runner`` (e.g. its DDP wrapper) is what the loss calls.

    ``amp`` ("bf16" | "fp16", CUDA only) runs the forward pass under autocast, as the DeiT
    recipe does; fp16 scales the loss (``torch.amp.GradScaler``) so small gradients survive.
    ``curve()`` evaluates the model (in eval mode, without touching its training state or the
    random streams) at ``curve_steps``; its time is kept out of the step times and ``time_s``.
    """
    r = task.prof.recipe
    amp = amp if device.type == "cuda" else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    runner = model if runner is None else runner
    model.train()
    runner.train()
    # weight decay skips biases, norm parameters and model.no_weight_decay() (DeiT recipe)
    opt = create_optimizer_v2(model, "adamw", lr=r.lr, weight_decay=r.weight_decay)
    sched = CosineLRScheduler(opt, t_initial=r.steps, lr_min=r.min_lr, warmup_t=r.warmup_steps,
                              warmup_lr_init=r.lr * 1e-3, warmup_prefix=True, t_in_epochs=False)
    batches = task.train_batches(seed)
    step_times, losses = [], []
    points, values, point_loss, eval_s, last = set(curve_steps(r.steps)) if curve else set(), [], [], 0.0, 0
    t_start = time.perf_counter()
    bar = tqdm(range(r.steps), desc=desc, leave=False, mininterval=1.0, dynamic_ncols=True,
               disable=not (show and interactive()))  # a log file gets the cell's one line at its end instead
    for step in bar:
        t0 = time.perf_counter()
        batch = to_device(next(batches), device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = task.loss(runner, batch)
        agreed = mean_across(loss.float())  # every process must take the same decision
        if not torch.isfinite(agreed):
            raise Diverged(f"non-finite loss {agreed.item()} at step {step + 1} of {r.steps}")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if r.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step_update(step + 1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        step_times.append(time.perf_counter() - t0)
        faults.point("train")
        losses.append(agreed.item())
        if step + 1 in points:
            t_eval = time.perf_counter()
            point_loss.append(sum(losses[last:]) / len(losses[last:]))  # mean train loss since the last point
            last = step + 1
            values.append(_evaluate_point(curve, model, runner))  # type: ignore[arg-type]
            eval_s += time.perf_counter() - t_eval
        if step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    chunk = max(1, math.ceil(len(losses) / 20))
    curve_means = [sum(losses[i:i + chunk]) / len(losses[i:i + chunk]) for i in range(0, len(losses), chunk)]
    steady = sorted(step_times[len(step_times) // 10:]) or sorted(step_times)
    learning: CurvePoints | None = (
        {"steps": sorted(points), "train_loss": point_loss, "values": values} if curve else None)
    return TrainStats(r.steps, time.perf_counter() - t_start - eval_s, 1e3 * steady[len(steady) // 2],
                      losses[-1], curve_means, amp, learning)


def _evaluate_point(curve: Callable[[], float], model: nn.Module, runner: nn.Module) -> float:
    """One point of the learning curve: eval mode for the evaluation, train mode again after."""
    model.eval()
    try:
        return float(curve())
    finally:
        model.train()
        runner.train()
