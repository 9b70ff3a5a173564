"""The history store: every recorded night's rows with their fingerprint, and trends over it.

``results/history/history.jsonl`` (or ``--history PATH``) holds one JSON line per cell and
night: the results row unchanged, plus ``night`` (one id per recorded run or merge),
``appended_at``, ``commit`` (the suite's git commit), ``fingerprint`` and
``fingerprint_id`` (``suite.report.fingerprint``) and ``history_version``. It is read with the
same reader as ``rows.jsonl`` (``pd.read_json(path, lines=True)`` works too; ``to_frame``
gives one column per judged metric). Bounded: only the newest ``keep_raw`` nights keep
every latency sample and the loss curve (older ones keep the per-round medians, which is
all a verdict needs), and at most ``max_nights`` nights are kept. Rows reach it by
``--history`` on a sweep or on ``merge``; local experiments stay out of the nightly trend.
"""
from __future__ import annotations

import fcntl
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from suite import jsonio
from suite.env import REPO_ROOT, now_iso
from suite.errors import UsageError
from suite.parts import RowDoc
from suite.regression.compare import HISTORY_FILE, WINDOW
from suite.regression.verdicts import ALPHA, MIN_HISTORY, Rule, observations
from suite.report.fingerprint import commit, fingerprint, fingerprint_id
from suite.report.rows import Row, latest_rows
from suite.report.store import Store, read_rows

DEFAULT_HISTORY = REPO_ROOT / "results" / "history"
HISTORY_VERSION = 1
THINNED = (("latency", "samples_ms"), ("train", "loss_curve"))


@dataclass
class HistoryConfig:
    keep_raw: int = 14        # newest nights that keep every raw latency sample
    max_nights: int = 400     # older nights are dropped

    def __post_init__(self) -> None:
        if self.keep_raw < 1 or self.max_nights < self.keep_raw:
            raise UsageError("history needs keep_raw >= 1 and max_nights >= keep_raw")


def history_file(path: Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".jsonl" else path / HISTORY_FILE


@contextmanager
def _locked(file: Path) -> Iterator[None]:
    """Writers wait for each other (a merge job and a local run may share a history)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file.parent / ".history.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def append_night(path: Path, rows: Sequence[Mapping[str, object]], cfg: HistoryConfig = HistoryConfig(),
                 night: str | None = None) -> str:
    """Append a run's newest rows as one night; returns the night id."""
    file = history_file(path)
    night = night or f"{now_iso()[:19].replace(':', '')}-{uuid.uuid4().hex[:6]}"
    store = Store(file.parent, schema=False)
    store.path = file  # the same append-only, fsync'd writer as rows.jsonl
    with _locked(file):
        for r in latest_rows(rows):
            fp = fingerprint(r)
            store.append({**r, "night": night, "appended_at": now_iso(), "commit": commit(r), "fingerprint": fp,
                          "fingerprint_id": fingerprint_id(fp), "history_version": HISTORY_VERSION})
        compact(file, cfg)
    return night


def nights(rows: Iterable[Mapping[str, object]]) -> list[str]:
    """Night ids in the order they were recorded."""
    return list(dict.fromkeys(Row(r).night or "?" for r in rows))


def compact(file: Path, cfg: HistoryConfig) -> bool:
    """Thin raw samples of old nights and drop the oldest beyond ``max_nights``; atomic rewrite."""
    rows = list(read_rows(file))
    order = nights(rows)
    keep = set(order[-cfg.max_nights:])
    raw = set(order[-cfg.keep_raw:])
    out: list[Mapping[str, object]] = []
    changed = False
    for r in rows:
        night = Row(r).night
        if night not in keep:
            changed = True
            continue
        doc = r if night in raw else _thinned(r)
        changed = changed or doc is not r
        out.append(doc)
    if changed:
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write("".join(jsonio.dumps(r) + "\n" for r in out))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, file)
    return changed


def _thinned(row: RowDoc) -> RowDoc | dict[str, object]:
    """``row`` without the raw series of ``THINNED`` (the same object where it holds none); a
    thinned part keeps its place in the line."""
    doc: dict[str, object] | None = None
    for part, name in THINNED:
        values = row.get(part)
        if isinstance(values, dict) and values.get(name) is not None:
            doc = doc if doc is not None else dict(row)
            doc[part] = {k: v for k, v in values.items() if k != name}
    return row if doc is None else doc


def read_history(path: Path) -> list[RowDoc]:
    file = history_file(path)
    if not file.exists():
        raise UsageError(f"no history at {file}; record one with --history on a sweep or merge, "
                         f"or pass --history PATH")
    return list(read_rows(file))


def to_frame(rows: Iterable[Mapping[str, object]]) -> tuple[pd.DataFrame, dict[str, Rule]]:
    """One line per history row: identity, night, commit, fingerprint and every judged metric
    in its own unit (latency in ms of the per-round median, memory in MB, ...)."""
    lines: list[dict[str, object]] = []
    rules: dict[str, Rule] = {}
    for r in map(Row, rows):
        line = r.history_line
        if r.ok:
            for m, (rule, obs) in observations(r, with_se=False).items():
                line[m] = rule.show(obs.value)
                rules[m] = rule
        lines.append(line)
    return pd.DataFrame(lines), rules


@dataclass
class Step:
    night: str
    commit: str | None
    change: str
    verdict: str
    nights_after: int


@dataclass(frozen=True)
class Trend:
    """One cell's values of a metric over the nights of one fingerprint, with its step changes."""
    key: str
    fingerprint_id: str
    nights: list[str]
    values: list[float]
    commits: list[str | None]
    steps: list[Step]


def find_steps(values: list[float], rule: Rule, recent: int = 7, window: int = WINDOW,
               alpha: float = ALPHA) -> list[tuple[int, str, float]]:
    """Step changes among the last ``recent`` nights: (night index, verdict, change on rule scale).

    Each split point c compares the median of nights c.. (the new level, m nights) with the
    median of up to ``window`` nights before it, against the spread of those nights; a step
    that persists for m nights is judged on m nights, so it is found more surely than one
    night alone can be. For each persisting step, the split that explains it best is kept."""
    x = np.array([rule.to_scale(v) for v in values], dtype=np.float64)
    found: list[tuple[int, str, float, float]] = []
    splits = range(max(MIN_HISTORY, len(x) - recent), len(x))
    # degrees of freedom of each split (k nights before, m after), their t quantiles in one call
    dfs = [min(window, c) - 1 + max(len(x) - c - 1, 0) for c in splits]
    quantiles = stats.t.ppf(1 - alpha, dfs) if dfs else []
    for c, df, q in zip(splits, dfs, quantiles):
        before, after = x[max(0, c - window):c], x[c:]
        k, m = len(before), len(after)
        # pooled spread of both levels (a two-sample t); medians cost a factor pi/2 in variance
        ss = float(np.var(before, ddof=1)) * (k - 1) + (float(np.var(after, ddof=1)) * (m - 1) if m > 1 else 0.0)
        sd = math.sqrt(ss / df) * math.sqrt((1.0 if m <= 2 else math.pi / 2) / m + math.pi / (2 * k))
        d = float(np.median(after) - np.median(before))
        threshold = max(rule.min_step, float(q) * sd)
        worse = d if rule.better == "lower" else -d
        if abs(worse) > threshold:
            found.append((c, "regressed" if worse > 0 else "improved", d, abs(worse) / max(threshold, 1e-12)))
    best: dict[str, tuple[int, str, float, float]] = {}
    for f in found:  # one report per direction: the split with the clearest evidence
        if f[1] not in best or f[3] > best[f[1]][3]:
            best[f[1]] = f
    return sorted((c, v, d) for c, v, d, _ in best.values())


def cell_trends(frame: pd.DataFrame, metric: str, rule: Rule, recent: int = 7) -> list[Trend]:
    """Per cell and fingerprint: the series of ``metric`` over nights and its step changes."""
    out = []
    ok = frame[(frame["status"] == "ok") & frame[metric].notna()] if metric in frame else frame.iloc[0:0]
    for (key, fid), g in ok.groupby(["key", "fingerprint_id"], sort=True):
        g = g.drop_duplicates("night", keep="last")
        vals = g[metric].tolist()
        steps = [Step(g["night"].iloc[c], g["commit"].iloc[c], rule.show_change(d), v, len(vals) - c)
                 for c, v, d in find_steps(vals, rule, recent)]
        out.append(Trend(key, fid, g["night"].tolist(), vals, g["commit"].tolist(), steps))
    return out
