"""The one training loop every task uses: AdamW (timm param groups), warm-up + cosine."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypedDict

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from tqdm import tqdm

from suite import faults
from suite.env import interactive
from suite.errors import Diverged
from suite.sweep.checkpoint import Checkpointer
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
    resumed_from: list[int] = field(default_factory=list)  # steps done when training continued from a checkpoint


@dataclass
class Progress:
    """What the loop has recorded after ``step`` optimizer steps (a checkpoint keeps it)."""
    step: int = 0
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)       # the learning curve's metric at its points so far
    point_loss: list[float] = field(default_factory=list)   # its mean train loss since the point before
    last: int = 0                                           # the step of the last point
    time_s: float = 0.0                                     # training seconds (curve and saves left out)
    resumed_from: list[int] = field(default_factory=list)


#: how many points of the run the learning curve evaluates at
CURVE_POINTS = 10


def curve_steps(steps: int, points: int = CURVE_POINTS) -> list[int]:
    """The optimizer steps (1-based) after which the learning curve is evaluated, evenly spread."""
    return sorted({max(1, round(k * steps / points)) for k in range(1, points + 1)})


def train(model: nn.Module, task: Task, device: torch.device, seed: int,
          desc: str = "train", runner: nn.Module | None = None, show: bool = True,
          amp: str | None = None, curve: Callable[[], float] | None = None,
          checkpoint: Checkpointer | None = None) -> TrainStats:
    """Train ``model`` in place on the batches and loss of ``task`` (an open task: its profile's
    recipe sets the schedule); ``runner`` (e.g. its DDP wrapper) is what the loss calls.

    ``amp`` ("bf16" | "fp16", CUDA only) runs the forward pass under autocast, as the DeiT
    recipe does; fp16 scales the loss (``torch.amp.GradScaler``) so small gradients survive.
    ``curve()`` evaluates the model (in eval mode, without touching its training state or the
    random streams) at ``curve_steps``; its time is kept out of the step times and ``time_s``.
    ``checkpoint`` saves the training state when due; where it holds a checkpoint of this cell,
    training continues after its step as if it had never stopped: the same batches, random
    numbers and result, bitwise on CPU (``time_s`` and the step times include the earlier attempts').
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
    states = {"model": model, "optimizer": opt, "scheduler": sched, "scaler": scaler}
    points = set(curve_steps(r.steps)) if curve else set()
    done = Progress()
    saved = checkpoint.load() if checkpoint is not None else None
    if checkpoint is not None and saved is not None:
        for _ in range(saved.step):  # the batches consumed, before the random streams are set as they were then
            next(batches)
        checkpoint.restore(saved, states)
        done = Progress(**saved.progress)
        done.resumed_from.append(done.step)
    t_start = time.perf_counter() - done.time_s  # earlier attempts count; each pause (curve, save) moves it on
    bar = tqdm(range(done.step, r.steps), desc=desc, leave=False, mininterval=1.0, dynamic_ncols=True,
               initial=done.step, total=r.steps,
               disable=not (show and interactive()))  # a log file gets the cell's one line at its end instead
    step_times, losses = done.step_times, done.losses
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
        faults.pace()
        losses.append(agreed.item())
        done.step = step + 1
        if step + 1 in points:
            t_eval = time.perf_counter()
            done.point_loss.append(sum(losses[done.last:]) / len(losses[done.last:]))  # mean loss since the last
            done.last = step + 1
            done.values.append(_evaluate_point(curve, model, runner))  # type: ignore[arg-type]
            t_start += time.perf_counter() - t_eval
        if checkpoint is not None and checkpoint.due(step + 1, final=step + 1 == r.steps):
            t_save = time.perf_counter()
            checkpoint.save(step + 1, states, asdict(done) | {"time_s": t_save - t_start})
            t_start += time.perf_counter() - t_save
        if step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    chunk = max(1, math.ceil(len(losses) / 20))
    curve_means = [sum(losses[i:i + chunk]) / len(losses[i:i + chunk]) for i in range(0, len(losses), chunk)]
    steady = sorted(step_times[len(step_times) // 10:]) or sorted(step_times)
    learning: CurvePoints | None = (
        {"steps": sorted(points), "train_loss": done.point_loss, "values": done.values} if curve else None)
    return TrainStats(r.steps, time.perf_counter() - t_start, 1e3 * steady[len(steady) // 2],
                      losses[-1], curve_means, amp, learning, done.resumed_from)


def _evaluate_point(curve: Callable[[], float], model: nn.Module, runner: nn.Module) -> float:
    """One point of the learning curve: eval mode for the evaluation, train mode again after."""
    model.eval()
    try:
        return float(curve())
    finally:
        model.train()
        runner.train()
