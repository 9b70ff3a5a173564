"""The GPU pool of one machine (``--device cuda``, ``--gpus``), without a GPU: which GPUs each worker
process is given (``CUDA_VISIBLE_DEVICES``), that a measurement has its GPU to itself, and the
checks of ``--gpus``. A machine with several GPUs runs the pool for real in ``make gpu-check``."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import suite.env
from suite.cli.main import main
from suite.launch import Launcher, start_server
from suite.sweep.executors import GpuPool, WorkerCall, executor_for
from suite.sweep.options import Launch

WORKER = "tests.launch_workers"


def _calls(tmp_path: Path, names: list[str], nproc: int = 1, seconds: float = 0.6) -> list[WorkerCall]:
    calls = []
    for n in names:
        spec = tmp_path / f"{n}.json"
        spec.write_text(json.dumps({"out": str(tmp_path / f"{n}.seen.json"), "action": "nap", "seconds": seconds}))
        # torchrun's own start-up is not what is tested: the pool gives the launcher its GPUs either way
        calls.append(WorkerCall(n, WORKER, str(spec), Launcher(mode="subprocess", nproc=nproc)))
    return calls


def _seen(tmp_path: Path, name: str) -> dict[str, object]:
    return json.loads((tmp_path / f"{name}.seen.json").read_text())


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_concurrent_cells_get_distinct_gpus_of_the_sweeps_numbering(tmp_path: Path) -> None:
    start_server()   # as the sweep does before its first worker
    pool = GpuPool([0, 1, 2], visible="4,5,6")   # the sweep itself sees physical GPUs 4, 5, 6
    names = ["ln", "un", "prepbn", "crms", "rms"]
    out = pool.train(_calls(tmp_path, names))
    assert out == dict.fromkeys(names, "")
    seen = {n: _seen(tmp_path, n) for n in names}
    for n, s in seen.items():   # each process sees one physical GPU and knows its pool index
        assert s["cuda_visible"] == str(4 + int(str(s["pool"]))), (n, s)
    running_together = [(a, b) for a in names for b in names if a < b and _overlap(seen[a], seen[b])]  # type: ignore[arg-type]
    assert running_together, "the pool ran its cells one at a time"
    for a, b in running_together:
        assert seen[a]["pool"] != seen[b]["pool"], f"{a} and {b} shared a GPU while both ran"
    most = max(sum(_overlap(seen[a], seen[b]) for b in names) for a in names)  # type: ignore[arg-type]
    assert most <= 3, "more cells at once than GPUs"
    assert sorted(pool._free) == [0, 1, 2]   # every GPU handed back


def test_a_ddp_cell_takes_as_many_gpus_as_processes(tmp_path: Path) -> None:
    pool = GpuPool([0, 1, 2, 3])
    pool.train(_calls(tmp_path, ["a", "b"], nproc=2))
    a, b = _seen(tmp_path, "a"), _seen(tmp_path, "b")
    assert len(str(a["cuda_visible"]).split(",")) == 2 == len(str(b["cuda_visible"]).split(","))
    assert not set(str(a["pool"]).split(",")) & set(str(b["pool"]).split(","))
    assert a["cuda_visible"] == a["pool"]   # no CUDA_VISIBLE_DEVICES of its own: indices as they are


def test_a_group_is_timed_alone_on_its_gpu_while_other_groups_train(tmp_path: Path) -> None:
    """Two groups at once on two GPUs: while one group's measurement holds a GPU, the other group's
    cells train, but never on that GPU."""
    pool = GpuPool([0, 1])
    windows: list[dict[str, object]] = []

    def measurement(label: str, env: dict[str, str]) -> str:
        start = time.time()
        time.sleep(1.5)
        windows.append({"pool": env[suite.env.GPUS_ENV], "cuda_visible": env["CUDA_VISIBLE_DEVICES"],
                        "start": start, "end": time.time()})
        return label

    names = ["ln", "un", "prepbn", "crms"]
    trainer = threading.Thread(target=lambda: (time.sleep(0.2), pool.train(_calls(tmp_path, names, seconds=0.4))))
    trainer.start()
    assert pool.measure("imagenet/seed 0", measurement, "imagenet/seed 0") == "imagenet/seed 0"
    trainer.join()
    timed = windows[0]
    trained = [_seen(tmp_path, n) for n in names]
    assert all(s["cuda_visible"] is not None for s in trained)
    beside = [s for s in trained if _overlap(s, timed)]  # type: ignore[arg-type]
    assert beside, "nothing trained while the group was timed: the pool did not share the machine"
    assert all(s["pool"] != timed["pool"] for s in beside), "a cell trained on the GPU being timed"


def test_the_pool_is_what_a_local_cuda_sweep_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite.env, "visible_gpus", lambda: 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-a,GPU-b,GPU-c")
    pool = executor_for(Launch(), Path("out"), "cuda")
    assert isinstance(pool, GpuPool) and pool.gpus == [0, 1, 2] and pool.concurrency == 3
    assert pool.env([1]) == {"CUDA_VISIBLE_DEVICES": "GPU-b", suite.env.GPUS_ENV: "1"}
    chosen = executor_for(Launch(gpus=[0, 2]), Path("out"), "cuda")
    assert isinstance(chosen, GpuPool) and chosen.gpus == [0, 2]
    assert not isinstance(executor_for(Launch(), Path("out"), "cpu"), GpuPool)
    assert not isinstance(executor_for(Launch(inline=True), Path("out"), "cuda"), GpuPool)
    with pytest.raises(Exception, match="needs 3 GPUs"), pool.taken(3), chosen.taken(3):
        pass


@pytest.mark.parametrize(("argv", "needle"), [
    (["--device", "cuda", "--gpus", "5"], "--gpus 5: no GPU 5 here; this machine shows 2 (indices 0-1"),
    (["--device", "cuda", "--gpus", "0,x"], "give GPU indices"),
    (["--device", "cpu", "--gpus", "0"], "add --device cuda, or drop --gpus"),
    (["--device", "cuda", "--gpus", "0", "--inline"], "drop --inline"),
    (["--device", "cuda", "--gpus", "0", "--nproc-per-node", "2"], "--nproc-per-node 2 needs 2 GPUs"),
    (["--nodes", "2"], "--nodes 2 needs a cluster: add --launcher slurm"),
    (["--detach"], "--detach needs a cluster: add --launcher slurm"),
    (["--checkpoint-every", "0"], "--checkpoint-every '0'"),
])
def test_bad_pool_and_cluster_options_are_one_line_before_anything_runs(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        argv: list[str], needle: str) -> None:
    monkeypatch.setattr(suite.env, "visible_gpus", lambda: 2)   # as on a machine with 2 GPUs
    monkeypatch.setattr(suite.env, "resolve_device", lambda name, check=True: name)
    out = tmp_path / "run"
    assert main(["--tasks", "wikitext", "--variants", "ln", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()
