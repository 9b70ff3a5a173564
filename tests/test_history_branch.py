"""The durable history (``scripts/history_branch.sh``) with real git: a bare remote and two clones.

The first push starts the orphan branch; a pull brings the folder back byte for byte; two jobs that
pulled the same tip push their own folders one after the other and both survive (each push copies
its folder onto the branch's newest tip, never the tip it pulled); a pull of a branch that does not
exist leaves the folder as it is (the cache's copy, on the first night after an upgrade).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "history_branch.sh"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def clone(remote: Path, where: Path) -> Path:
    git("clone", "-q", str(remote), str(where), cwd=remote.parent)
    git("config", "user.email", "t@example.invalid", cwd=where)
    git("config", "user.name", "t", cwd=where)
    return where


def history(cwd: Path, *args: str, part_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"NORMBENCH_HISTORY_PART_BYTES": str(part_bytes)} if part_bytes else {})}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=env)


def test_the_history_branch_survives_two_jobs_and_comes_back_byte_for_byte(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=remote)   # the default branch, as on GitHub
    seed = clone(remote, tmp_path / "seed")
    (seed / "README").write_text("main\n")
    git("add", "README", cwd=seed)
    git("commit", "-q", "-m", "main", cwd=seed)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=seed)
    merge, bench = clone(remote, tmp_path / "merge"), clone(remote, tmp_path / "bench")

    kept = merge / "results" / "history"
    kept.mkdir(parents=True)
    (kept / "history.jsonl").write_text('{"night": "n0"}\n')
    r = history(merge, "pull", "results/history", "history")
    assert r.returncode == 0 and "no branch" in r.stdout and (kept / "history.jsonl").exists()   # left as is

    (kept / ".history.lock").write_text("")
    assert history(merge, "push", "results/history", "history", "night n0").returncode == 0
    files = git("ls-tree", "-r", "--name-only", "normbench-history", cwd=remote)
    assert files.split() == ["history/history.jsonl"]   # an orphan branch of history folders only

    # both jobs start from the same tip; each pushes its own folder; the second push is retried
    assert history(bench, "pull", "results/history-deploy-bench", "history-deploy-bench").returncode == 0
    (kept / "history.jsonl").write_text('{"night": "n0"}\n{"night": "n1"}\n')
    bench_dir = bench / "results" / "history-deploy-bench"
    bench_dir.mkdir(parents=True)
    (bench_dir / "history.jsonl").write_text('{"bench": 1}\n')
    assert history(merge, "push", "results/history", "history", "night n1").returncode == 0
    r = history(bench, "push", "results/history-deploy-bench", "history-deploy-bench", "bench night")
    assert r.returncode == 0, r.stderr
    files = git("ls-tree", "-r", "--name-only", "normbench-history", cwd=remote).split()
    assert files == ["history-deploy-bench/history.jsonl", "history/history.jsonl"]

    fresh = clone(remote, tmp_path / "fresh")
    assert history(fresh, "pull", "results/history", "history").returncode == 0
    assert (fresh / "results" / "history" / "history.jsonl").read_bytes() == (kept / "history.jsonl").read_bytes()
    r = history(fresh, "push", "results/history", "history", "again")
    assert r.returncode == 0 and "unchanged" in r.stdout
    assert git("rev-list", "--count", "normbench-history", cwd=remote).strip() == "3"

    # a history past GitHub's file limit goes on the branch in parts, split at line ends, joined on pull
    big = "".join(f'{{"night": "n{i}", "pad": "{"x" * 40}"}}\n' for i in range(50))
    (kept / "history.jsonl").write_text(big)
    assert history(merge, "push", "results/history", "history", "big", part_bytes=1000).returncode == 0
    parts = [f for f in git("ls-tree", "-r", "--name-only", "normbench-history", cwd=remote).split()
             if f.startswith("history/")]
    assert len(parts) > 2 and all(f.startswith("history/history.jsonl.part-") for f in parts), parts
    for f in parts:
        assert git("show", f"normbench-history:{f}", cwd=remote).endswith("\n")   # whole lines only
    assert history(fresh, "pull", "results/history", "history").returncode == 0
    assert (fresh / "results" / "history" / "history.jsonl").read_text() == big
    assert sorted(p.name for p in (fresh / "results" / "history").iterdir()) == ["history.jsonl"]
