"""``merge DIR...``: the stores of the ``--shard I/N`` runs of one sweep, put back together.

Every row of the shard folders is copied, unchanged, into one new store in the sweep's
order (tasks, seeds, variants as the shards' ``run.json`` lists them); the table and
leaderboard are then written from it, so the result is what the unsharded sweep would
record. Shards measured on different hardware or software (``suite.report.fingerprint``)
cannot be merged: their latencies would share a table without being comparable.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import jsonio
from suite.declare import to_json
from suite.errors import UsageError
from suite.parts import RowDoc
from suite.report.fingerprint import Fingerprint, differences, fingerprint
from suite.report.rows import Row, cell_key
from suite.report.store import ROWS, Store, read_rows
from suite.sweep.config import RunConfig

#: the options that must agree between the shards of one sweep, as (section, field)
SAME = (("grid", "tasks"), ("grid", "variants"), ("grid", "seeds"), ("grid", "profile"), ("grid", "device"),
        ("grid", "data_root"), ("measurement", "runtime"), ("measurement", "precision"))


@dataclass
class Source:
    path: Path
    rows: list[RowDoc]
    config: RunConfig | None = None   # from its run.json (None: a folder without one)


def _source(path: Path) -> Source:
    path, run = Path(path), Path(path) / "run.json"
    if not (path / ROWS).exists() and not run.exists():  # a shard with no group of its own has run.json only
        raise UsageError(f"merge: {path} has no {ROWS}; give the --out folders of the shard runs")
    config = jsonio.read(run).get("config") if run.exists() else None   # a run.json: an object
    return Source(path, list(read_rows(path / ROWS)), RunConfig.from_json(config) if config else None)


def _value(cfg: RunConfig, section: str, name: str) -> Any:
    return to_json(getattr(getattr(cfg, section), name))


def _check_same_sweep(sources: list[Source]) -> RunConfig | None:
    configured = [(s, s.config) for s in sources if s.config is not None]
    for s, cfg in configured[1:]:
        first = configured[0][1]
        diff = [name for section, name in SAME if _value(cfg, section, name) != _value(first, section, name)]
        count = {None if c.grid.shard is None else c.grid.shard.count for c in (first, cfg)}
        if diff or len(count) > 1:
            what = ", ".join(diff) or "shard count"
            raise UsageError(f"merge: {s.path} and {configured[0][0].path} come from different sweeps ({what} differ); "
                             f"merge the shards of one sweep, started with the same arguments")
    return configured[0][1] if configured else None


def _check_fingerprints(sources: list[Source]) -> None:
    first: tuple[Path, Fingerprint] | None = None
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
    rows: list[RowDoc]
    duplicates: dict[str, list[str]]        # key -> the folders that each recorded it
    missing: list[str]                      # keys the sweep's config expects that no shard recorded
    shards: list[str]                       # "I/N" of each source, as its run.json says

    def messages(self) -> list[str]:
        out = []
        for k, d in self.duplicates.items():
            configs = {Row(r).config_id for r in self.rows if Row(r).key == k}
            what = (f"in {len(configs)} different configurations (config_id {', '.join(sorted(map(str, configs)))})"
                    if len(configs) > 1 else "")
            out.append(f"duplicate cell {k} in {', '.join(d)} {what}: every row is kept; the newest recorded one "
                       f"is shown".replace("  ", " "))
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
        for k in dict.fromkeys(Row(r).key for r in s.rows):
            seen.setdefault(k, []).append(str(s.path))
    grid = config.grid if config is not None else None
    rank = {name: {v: i for i, v in enumerate(getattr(grid, name) if grid else [])}
            for name in ("tasks", "seeds", "variants")}

    def order(doc: RowDoc) -> tuple[int, str, int, int, int, str, str]:
        r = Row(doc)
        return (rank["tasks"].get(r.task, len(rank["tasks"])), r.task, rank["seeds"].get(r.seed, len(rank["seeds"])),
                r.seed, rank["variants"].get(r.variant, len(rank["variants"])), r.variant, r.recorded_at or "")
    rows = sorted((r for s in sources for r in s.rows), key=order)
    expected = [cell_key(t, v, s, grid.profile, grid.device, r, p) for t in grid.tasks for s in grid.seeds
                for v in grid.variants for r, p in config.measurements] if config and grid else []
    shards = [str(s.config.grid.shard) if s.config and s.config.grid.shard else "?/?" for s in sources]
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
