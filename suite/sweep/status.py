"""``run_suite.py status DIR``: where a run stands, cell by cell, at any time (local or SLURM).

Read without taking the run's lock, so it answers while the sweep runs: the run's configuration
(``run.json``) says which cells and measurements the run asks for; each cell's folder whether it
has trained (``result.json``); the store which rows are recorded and how they ended; under
``--launcher slurm`` the jobs the sweep submitted (``slurm/jobs.jsonl``) and what ``squeue``
says of those still queued. One line per cell, then the counts.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from suite import jsonio
from suite.errors import UsageError
from suite.report.rows import Row
from suite.report.store import ROWS, read_rows
from suite.sweep.config import RunConfig
from suite.sweep.executors import JOBS_FILE, newest_jobs, queue_states


@dataclass(frozen=True)
class CellStatus:
    cell: str               # task/variant/seed
    trained: str            # ok, error, ..., running (a spec without a result yet), or - (not started)
    asked: int              # rows the run asks of the cell (one per runtime and precision)
    recorded: dict[str, int]   # its newest rows by status
    job: str                # the newest job of the cell and its state ('' for a local run)

    @property
    def rows(self) -> str:
        done = ", ".join(f"{n} {s}" for s, n in self.recorded.items()) or "none"
        return f"{sum(self.recorded.values())}/{self.asked} {done}"

    @property
    def state(self) -> str:
        """failed (a row is an error: --resume runs it again), done (every row recorded), else pending."""
        if self.recorded.get("error"):
            return "failed"
        return "done" if sum(self.recorded.values()) == self.asked else "pending"


def run_status(folder: Path) -> list[CellStatus]:
    folder = Path(folder)
    run = folder / "run.json"
    if not run.exists():
        raise UsageError(f"status: {folder} holds no run.json; give the --out folder of a sweep")
    stored = RunConfig.from_json(jsonio.read(run)["config"])
    cfg = stored.replace(output=dataclasses.replace(stored.output, out=folder))   # wherever the folder is now
    latest = {Row(r).key: Row(r) for r in read_rows(folder / ROWS)} if (folder / ROWS).exists() else {}
    jobs = newest_jobs(folder / "slurm" / JOBS_FILE)
    states = queue_states([j["job_id"] for j in jobs.values()]) if jobs and shutil.which("squeue") else {}
    out = []
    for task in cfg.grid.tasks:
        for seed in cfg.grid.seeds:
            for variant in cfg.grid.variants:
                spec = cfg.cell(task, variant, seed)
                keys = [spec.key(r, p) for r, p in cfg.measurements]
                recorded = dict(Counter(latest[k].status for k in keys if k in latest))
                d = Path(spec.cell_dir)
                job = jobs.get(d.name)
                job_text = "" if job is None else f"{job['job_id']} {_job_state(job, states)}"
                out.append(CellStatus(f"{task}/{variant}/s{seed}", _trained(d), len(keys), recorded, job_text))
    return out


def _trained(d: Path) -> str:
    result = d / "result.json"
    if result.exists():
        return str(json.loads(result.read_text()).get("status", "?"))
    return "running or queued" if (d / "spec.json").exists() else "-"


def _job_state(job: dict[str, str], states: dict[str, str]) -> str:
    if job["job_id"] in states:
        return states[job["job_id"]]
    return "ended" if Path(job["result"]).exists() else "gone (no result)"


def group_jobs(folder: Path) -> list[str]:
    """One line for each job that is not a cell's: a group's measurement, a detached run's final job."""
    jobs = [j for j in newest_jobs(Path(folder) / "slurm" / JOBS_FILE).values() if j["kind"] != "cell"]
    states = queue_states([j["job_id"] for j in jobs]) if jobs and shutil.which("squeue") else {}
    return [f"{j['kind']} job {j['job_id']} ({j['unit']}): {_job_state(j, states)}" for j in jobs]


def render(cells: list[CellStatus], folder: Path) -> str:
    from tabulate import tabulate
    with_jobs = any(c.job for c in cells)
    table = [[c.cell, c.trained, c.rows, *([c.job] if with_jobs else []), c.state] for c in cells]
    head = ["cell", "trained", "rows", *(["job"] if with_jobs else []), "state"]
    counts = Counter(c.state for c in cells)
    summary = f"{folder}: {len(cells)} cells: " + ", ".join(f"{counts.get(s, 0)} {s}"
                                                            for s in ("done", "failed", "pending"))
    return "\n".join([summary, tabulate(table, headers=head, tablefmt="github"), *group_jobs(folder)])
