"""Benchmark: the default sweep through a SLURM cluster against the same sweep run locally.

Starts the tests' single-node SLURM (``tests/slurmcluster.py``; root, Debian's slurm-wlm and
munge), runs ``run_suite.py`` on the embedded default (every default task and variant) once with
``--launcher local`` and once with ``--launcher slurm``, and writes to ``--out``:

- ``summary.json`` / ``summary.md``: each run's wall time; for every SLURM job the seconds from
  its submission (the sweep's ``jobs.jsonl``) to its start (``scontrol``'s ``StartTime``, polled
  while the sweep runs, since a finished job leaves the controller after ``MinJobAge``); and the
  batch-1 latency and throughput ratios to ``ln`` of both runs side by side, per task;
- both runs' folders (rows, leaderboards).

Each run's ratios are interleaved inside its own timing worker, so the two runs' ratios can be set
side by side even though the runs follow each other. Usage (about 25-40 minutes on 2 cores):
``.venv/bin/python scripts/cluster_bench.py --out results/reference/cluster-vs-local-<cpu>``
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import slurmcluster  # noqa: E402

from suite.measure.env import cpu_name  # noqa: E402


def sweep(out: Path, env: dict[str, str], extra: list[str]) -> float:
    t0 = time.monotonic()
    with open(out.parent / f"{out.name}.log", "w") as log:
        proc = subprocess.run([sys.executable, str(REPO / "run_suite.py"), *extra, "--out", str(out)], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=log)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{out.name}: run_suite.py exited {proc.returncode}; see {out.parent / (out.name + '.log')}")
    return time.monotonic() - t0


def watch_starts(cluster: slurmcluster.Cluster, seen: dict[str, str], stop: threading.Event) -> None:
    """Every job's StartTime as scontrol reports it, array tasks one by one."""
    while not stop.is_set():
        for line in cluster.run("scontrol", "show", "job", "-o", check=False).splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            job = fields.get("JobId")
            if fields.get("ArrayJobId") and fields.get("ArrayTaskId"):
                job = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            start = fields.get("StartTime", "Unknown")
            if job and start not in ("Unknown", "None") and fields.get("JobState") != "PENDING":
                seen[job] = start
        stop.wait(2.0)


def recorded_span(folder: Path) -> float:
    start = json.loads((folder / "run.json").read_text())["started_at"]
    last = [json.loads(x) for x in (folder / "rows.jsonl").read_text().splitlines() if x.strip()][-1]["recorded_at"]
    return (dt.datetime.fromisoformat(last) - dt.datetime.fromisoformat(start)).total_seconds()


def same_cells(here: Path, there: Path) -> dict[str, object]:
    """Whether both runs hold the same cells with the same config_ids and quality."""
    def rows(folder: Path) -> dict[str, dict[str, object]]:
        return {r["key"]: r for r in map(json.loads, (folder / "rows.jsonl").read_text().splitlines())}
    a, b = rows(here), rows(there)
    return {"same_keys": set(a) == set(b),
            "same_config_ids": all(a[k]["config_id"] == b[k]["config_id"] for k in a if k in b),
            "quality_equal": {k: a[k]["quality"] == b[k]["quality"] for k in a if k in b},
            "status": {k: [a[k]["status"], b[k]["status"] if k in b else None] for k in a}}


def ratios(folder: Path) -> dict[str, dict[str, dict[str, float | None]]]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for line in (folder / "rows.jsonl").read_text().splitlines():
        r = json.loads(line)
        lat, thr = (r.get("latency") or {}).get("ratio") or {}, (r.get("throughput") or {}).get("ratio") or {}
        out.setdefault(r["task"], {})[r["variant"]] = {"latency": lat.get("value"), "throughput": thr.get("value"),
                                                      "status": r["status"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--args", default="", help="extra run_suite.py arguments for both runs")
    p.add_argument("--slurm-args", default="--slurm-cpus-per-task 2",
                   help="extra arguments of the SLURM run (default: each cell job gets the 2 cores a local cell uses)")
    p.add_argument("--reuse-local", action="store_true",
                   help="keep a finished OUT/local run (its wall time: run.json's start to its last row)")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    extra = a.args.split()
    cluster = slurmcluster.start(a.out / "cluster-state")
    try:
        if a.reuse_local and (a.out / "local" / "rows.jsonl").exists():
            local_s = recorded_span(a.out / "local")
        else:
            local_s = sweep(a.out / "local", cluster.env, extra)
        starts: dict[str, str] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_starts, args=(cluster, starts, stop), daemon=True)
        watcher.start()
        slurm_s = sweep(a.out / "slurm", cluster.env,
                        [*extra, "--launcher", "slurm", "--slurm-partition", "debug", *a.slurm_args.split()])
        stop.set()
        watcher.join()
    finally:
        cluster.stop()
    jobs = [json.loads(x) for x in (a.out / "slurm" / "slurm" / "jobs.jsonl").read_text().splitlines() if x.strip()]
    waits = []
    for j in jobs:
        start = starts.get(j["job_id"])
        if start is not None:
            submitted = dt.datetime.fromisoformat(j["submitted_at"]).astimezone().replace(tzinfo=None)
            waits.append({"job": j["job_id"], "kind": j["kind"], "unit": j["unit"],
                          "submit_to_start_s": (dt.datetime.fromisoformat(start) - submitted).total_seconds()})
    here, there = ratios(a.out / "local"), ratios(a.out / "slurm")
    summary = {"machine": {"cpu": cpu_name(), "host": platform.node(), "python": platform.python_version()},
               "args": extra, "wall_s": {"local": local_s, "slurm": slurm_s}, "jobs": waits,
               "ratios": {"local": here, "slurm": there}, "cells": same_cells(a.out / "local", a.out / "slurm"),
               "slurm_args": a.slurm_args.split()}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    cells = summary["cells"]
    assert isinstance(cells, dict)
    what = f"`run_suite.py {' '.join(extra)}`" if extra else "Default sweep"
    lines = [f"# {what}: SLURM (test cluster) vs local, {cpu_name()}", "",
             f"- wall time: local {local_s:.0f} s, slurm {slurm_s:.0f} s ({slurm_s / local_s:.2f}x)",
             f"- same cells: {cells['same_keys']}, same config_ids: {cells['same_config_ids']}, equal quality: "
             f"{sum(cells['quality_equal'].values())} of {len(cells['quality_equal'])}",
             f"- jobs: {len(jobs)} submitted, {len(waits)} seen starting; submission to start (scontrol's "
             f"StartTime, 1 s resolution): " + (", ".join(f"{w['kind']} {w['job']} {w['submit_to_start_s']:.0f} s"
                                                         for w in waits) or "none seen"), "",
             "| task | variant | latency/ln local | latency/ln slurm | throughput/ln local | throughput/ln slurm |",
             "|---|---|---|---|---|---|"]
    for task, variants in here.items():
        for v, r in variants.items():
            s = there.get(task, {}).get(v, {})
            cells = [r.get("latency"), s.get("latency"), r.get("throughput"), s.get("throughput")]
            lines.append(f"| {task} | {v} | " + " | ".join("-" if x is None else f"{x:.3f}" for x in cells) + " |")
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
