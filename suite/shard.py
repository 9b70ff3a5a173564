"""``--shard I/N`` and ``merge``: split one sweep over N runners, then put it back together.

The unit of a shard is a (task, seed) group, never a single cell: a group's variants are
timed interleaved in one process, and that pairing is what makes the latency ratio to
``ln`` resolve a few percent. The groups are sorted by (task, seed) and dealt round-robin:
group i of the sorted list goes to shard ``i % N + 1``. Every shard of one sweep gets the
same ``--tasks``/``--seeds``, so they agree on the list without talking to each other;
each cell is in exactly one shard, and the shards' sizes differ by at most one group.

``merge DIR...`` copies every row of the shard folders, unchanged, into one new store in
the sweep's order (tasks, seeds, variants as the shards' ``run.json`` lists them), then
writes the table and leaderboard, so the result is what the unsharded sweep would record.
Shards measured on different hardware or software (``suite.fingerprint``) cannot be
merged: their latencies would share a table without being comparable.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite import jsonio
from suite.errors import UsageError
from suite.fingerprint import differences, fingerprint
from suite.store import ROWS, Store, read_rows

FIX = "give I/N with 1 <= I <= N, e.g. --shard 1/4"
CONFIG_KEYS = ("tasks", "variants", "seeds", "profile", "device", "data_root")


@dataclass(frozen=True)
class Shard:
    index: int   # 1-based
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(f"malformed --shard {self.index}/{self.count}: {FIX}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"malformed --shard {text!r}: {FIX}")
    return Shard(int(parts[0]), int(parts[1]))


def shard_groups(tasks: list[str], seeds: list[int], shard: Shard | None) -> list[tuple[str, int]]:
    """The (task, seed) groups shard ``shard`` runs (all of them without a shard)."""
    groups = sorted({(t, s) for t in tasks for s in seeds})
    return groups if shard is None else groups[shard.index - 1::shard.count]


@dataclass
class Source:
    path: Path
    rows: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)


def _source(path: Path) -> Source:
    path, run = Path(path), Path(path) / "run.json"
    if not (path / ROWS).exists() and not run.exists():  # a shard with no group of its own has run.json only
        raise UsageError(f"merge: {path} has no {ROWS}; give the --out folders of the shard runs")
    return Source(path, list(read_rows(path / ROWS)), (jsonio.read(run).get("config") or {}) if run.exists() else {})


def _check_same_sweep(sources: list[Source]) -> dict[str, Any]:
    configured = [s for s in sources if s.config]
    for s in configured[1:]:
        diff = [k for k in CONFIG_KEYS if s.config.get(k) != configured[0].config.get(k)]
        count = {(x.config.get("shard") or {}).get("count") for x in (configured[0], s)}
        if diff or len(count) > 1:
            what = ", ".join(diff) or "shard count"
            raise UsageError(f"merge: {s.path} and {configured[0].path} come from different sweeps ({what} differ); "
                             f"merge the shards of one sweep, started with the same arguments")
    return configured[0].config if configured else {}


def _check_fingerprints(sources: list[Source]) -> None:
    first: tuple[Path, dict[str, Any]] | None = None
    for s in sources:
        for r in s.rows:
            fp = fingerprint(r, data=False)
            if first is None:
                first = (s.path, fp)
            elif fp != first[1]:
                diff = "; ".join(differences(first[1], fp))
                raise UsageError(f"merge: {s.path} was measured on different hardware or software than "
                                 f"{first[0]} ({diff}); run every shard on identical runners, or merge them separately")


@dataclass
class MergeReport:
    rows: list[dict[str, Any]]
    duplicates: dict[str, list[str]]        # key -> the folders that each recorded it
    missing: list[str]                      # keys the sweep's config expects that no shard recorded
    shards: list[str]                       # "I/N" of each source, as its run.json says

    def messages(self) -> list[str]:
        out = [f"duplicate cell {k} in {', '.join(d)}: every row is kept; the newest recorded one is shown"
               for k, d in self.duplicates.items()]
        if self.missing:
            out.append(f"{len(self.missing)} cell(s) of the sweep are in no shard: {', '.join(self.missing)}")
        return out


def merge_rows(paths: list[Path]) -> MergeReport:
    """Check the shard folders and combine their rows in the unsharded sweep's order."""
    if not paths:
        raise UsageError("merge needs at least one shard folder: run_suite.py merge DIR... --out OUT")
    sources = [_source(p) for p in paths]
    config = _check_same_sweep(sources)
    _check_fingerprints(sources)
    seen: dict[str, list[str]] = {}
    for s in sources:
        for k in dict.fromkeys(r["key"] for r in s.rows):
            seen.setdefault(k, []).append(str(s.path))
    rank = {name: {v: i for i, v in enumerate(config.get(name) or [])} for name in ("tasks", "seeds", "variants")}

    def order(r: dict[str, Any]) -> tuple:
        return (rank["tasks"].get(r["task"], len(rank["tasks"])), r["task"],
                rank["seeds"].get(r["seed"], len(rank["seeds"])), r["seed"],
                rank["variants"].get(r["variant"], len(rank["variants"])), r["variant"], r.get("recorded_at") or "")
    rows = sorted((r for s in sources for r in s.rows), key=order)
    expected = [f"{t}|{v}|{s}|{config['profile']}|{config['device']}" for t in config.get("tasks", [])
                for s in config.get("seeds", []) for v in config.get("variants", [])] if config else []
    shards = [str((s.config.get("shard") or {}).get("index", "?")) + "/" +
              str((s.config.get("shard") or {}).get("count", "?")) for s in sources]
    return MergeReport(rows, {k: d for k, d in seen.items() if len(d) > 1},
                       [k for k in expected if k not in seen], shards)


def write_merged(report: MergeReport, out: Path, sources: list[Path]) -> None:
    """A new store holding every shard row; refuses a folder that already holds rows."""
    store = Store(out)
    if store.path.exists():
        raise UsageError(f"merge --out {out} already holds {ROWS}; give a new folder")
    with store.lock():
        for r in report.rows:
            store.append(r)
        counts = Counter(s for s in report.shards)
        jsonio.write_atomic(Path(out) / "merge.json", {
            "sources": [str(p) for p in sources], "shards": report.shards, "rows": len(report.rows),
            "duplicates": report.duplicates, "missing": report.missing,
            "repeated_shards": [s for s, n in counts.items() if n > 1 and "?" not in s]})
