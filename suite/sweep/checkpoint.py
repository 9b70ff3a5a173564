"""Training checkpoints: a killed, preempted or requeued cell continues where it was.

``Checkpointer`` saves the whole training state of one rank to ``<cell_dir>/checkpoint/rank-<r>.pt``
(written to a temporary file of that folder, then renamed into place, so a kill never leaves half a
file): the model (the plain module, not its DDP wrapper), optimizer, LR scheduler and gradient
scaler, what the loop has recorded so far (``progress``: losses, step times, the learning curve,
training seconds) and the random streams (Python, NumPy, torch CPU and the cell's CUDA device). A
checkpoint carries the ``cell_id`` of its cell; one of another cell plan is deleted instead of
loaded. Every rank of a multi-process cell keeps its own file (BN-family statistics differ per
rank) and they save at the same steps: an interval of steps is the same everywhere, one of
minutes is decided on rank 0 and shared. A rank keeps its previous checkpoint
(``rank-<r>.prev.pt``) until every rank has written the new one, so a kill in the middle of a save
still leaves a step that all ranks hold: they resume from the newest such step. ``train`` saves
when ``due`` and once more after the last step (a cell killed during its evaluation does not
train again); the cell removes the folder once it has succeeded.
"""
from __future__ import annotations

import os
import random
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from suite.sweep.options import Interval

#: how often a cell of a paper profile (``paper``, ``paper-*``) saves when ``--checkpoint-every``
#: is not given; the other profiles (smoke: minutes of work) save only when asked
PAPER_EVERY = Interval(minutes=30.0)
#: the folder of a cell's checkpoints, one file per rank
FOLDER, FILE, PREVIOUS = "checkpoint", "rank-{rank}.pt", "rank-{rank}.prev.pt"
#: the layout of a checkpoint file; one of another layout is not loaded
FORMAT = 1


def interval_for(every: Interval | None, profile: str) -> Interval | None:
    """The interval a cell saves at: ``--checkpoint-every`` when given, else the profile's default."""
    if every is not None:
        return every
    return PAPER_EVERY if profile == "paper" or profile.startswith("paper-") else None


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class Saved:
    """A checkpoint as loaded: ``step`` optimizer steps done, the loop's ``progress``, the states."""
    step: int
    progress: dict[str, Any]
    states: dict[str, Any]
    rng: dict[str, Any]


class Checkpointer:
    """Saves and loads one rank's training state; ``every=None`` never saves (each call is then a
    comparison or two), but a checkpoint already there is still resumed from."""

    def __init__(self, cell_dir: Path | str, rank: int, cell_id: str, every: Interval | None,
                 device: torch.device | None = None) -> None:
        self.folder = Path(cell_dir) / FOLDER
        self.path, self.previous = self.folder / FILE.format(rank=rank), self.folder / PREVIOUS.format(rank=rank)
        self.rank, self.cell_id, self.every = rank, cell_id, every
        self.device = device or torch.device("cpu")
        self._last = time.monotonic()

    def due(self, step: int, final: bool = False) -> bool:
        """Whether to save now, after ``step`` optimizer steps (``final``: the last one). Called on
        every rank after every step: with an interval of minutes, rank 0's clock decides for all."""
        if self.every is None:
            return False
        if final:
            return True
        if self.every.steps is not None:
            return step % self.every.steps == 0
        late = time.monotonic() - self._last >= 60 * (self.every.minutes or 0.0)
        return _max_across(int(late) if self.rank == 0 else 0, self.device) > 0

    def save(self, step: int, states: Mapping[str, Stateful], progress: Mapping[str, Any]) -> None:
        """Write this rank's state after ``step`` optimizer steps, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "cell_id": self.cell_id, "step": step, "progress": dict(progress),
               "states": {k: v.state_dict() for k, v in states.items()}, "rng": _rng_state(self.device)}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            torch.save(doc, f)
            f.flush()
            os.fsync(f.fileno())
        if self.path.exists():
            os.replace(self.path, self.previous)
        os.replace(tmp, self.path)
        self._last = time.monotonic()
        _max_across(0, self.device)  # every rank holds this step: the one before may go
        self.previous.unlink(missing_ok=True)

    def load(self) -> Saved | None:
        """This rank's checkpoint of the newest step every rank holds one of, for this cell; None when
        there is none (a checkpoint of another cell is deleted)."""
        for stale in self.folder.glob(f".{self.path.name}.*.tmp"):  # a save that was killed
            stale.unlink(missing_ok=True)
        found = {s.step: s for s in map(self._read, (self.path, self.previous)) if s is not None}
        step = -_max_across(-max(found, default=-1), self.device)  # the least of the ranks' newest
        if _max_across(int(step not in found), self.device):
            if found:
                print(f"normbench: rank {self.rank}: the ranks hold no checkpoint of one step; training "
                      f"starts over", file=sys.stderr)
            self.path.unlink(missing_ok=True)
            self.previous.unlink(missing_ok=True)
            return None
        return found[step]

    def restore(self, saved: Saved, states: Mapping[str, Stateful]) -> None:
        """Load the saved states into ``states`` and set the random streams as they were."""
        for k, v in states.items():
            v.load_state_dict(saved.states[k])
        _set_rng_state(saved.rng, self.device)

    def _read(self, path: Path) -> Saved | None:
        if not path.exists():
            return None
        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - an unreadable checkpoint costs the steps it held, not the cell
            why = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            print(f"normbench: {path} cannot be read ({why}); not resumed from", file=sys.stderr)
            return None
        if (doc.get("format"), doc.get("cell_id")) != (FORMAT, self.cell_id):
            print(f"normbench: {path} is of another cell plan (or suite version); deleted", file=sys.stderr)
            path.unlink(missing_ok=True)
            return None
        return Saved(doc["step"], doc["progress"], doc["states"], doc["rng"])


def remove_checkpoints(cell_dir: Path | str) -> None:
    """Delete the checkpoints of every rank of a cell (it is done: they would only take room)."""
    shutil.rmtree(Path(cell_dir) / FOLDER, ignore_errors=True)


def _max_across(value: int, device: torch.device) -> int:
    """The largest ``value`` of all processes (this one's alone outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor(value, dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = torch.from_numpy(np_state["state"]["key"].astype(np.int64))  # plain tensors load safely
    out = {"python": random.getstate(), "numpy": np_state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np_state = dict(state["numpy"])
    np_state["state"] = {**np_state["state"], "key": np_state["state"]["key"].numpy().astype(np.uint32)}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
