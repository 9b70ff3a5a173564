"""The history as the site shows it: every cell's metrics over the nights, and what each night called.

A night's calls are replayed with the nightly's own judge (``suite.regression.compare.cell_verdicts``):
each night's row of a cell against that cell's ``window`` nights before it, with the seed spreads of
both nights, exactly as ``merge --compare results/history`` judged it when that night was recorded
(the history keeps the rows unchanged; old nights only lose their raw samples, which a verdict
against a history of five or more nights does not use). Step changes (``find_steps`` over every
night) mark the commit where a new level began.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from suite.parts import RowDoc
from suite.regression.compare import WINDOW, Verdict, cell_verdicts, seed_spread
from suite.regression.history import Step, find_steps, nights
from suite.regression.verdicts import Memo, Rule, observed
from suite.report.rows import Row, cell_label, latest_rows

CALLED = ("regressed", "improved")


@dataclass(frozen=True)
class Call:
    """A regression or improvement the nightly called for one cell on one night."""
    night: str
    index: int               # the night's place in the history (0: oldest)
    commit: str | None
    recorded_at: str | None
    verdict: Verdict


@dataclass
class CellHistory:
    """One cell's nights (oldest first), its judged metrics per night, and the calls and steps."""
    key: str
    row: Row                                  # the newest row (task, variant, device, provenance)
    nights: list[str] = field(default_factory=list)
    commits: list[str | None] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)   # metric -> value per night
    rules: dict[str, Rule] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    steps: dict[str, list[Step]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return cell_label(self.key)

    @property
    def regressed(self) -> bool:
        return any(c.verdict.verdict == "regressed" for c in self.calls)


def cell_histories(rows: Sequence[RowDoc], window: int = WINDOW) -> list[CellHistory]:
    """Every cell of a history store, with each night's calls replayed."""
    order = nights(rows)
    by_night: dict[str, list[RowDoc]] = {n: [] for n in order}
    for r in rows:
        by_night[Row(r).night or "?"].append(r)
    per_night = {n: latest_rows(rs) for n, rs in by_night.items()}
    memo: Memo = {}   # each row observed once, however many nights it is a baseline of
    spreads = {n: seed_spread(rs, memo) for n, rs in per_night.items()}
    cells: dict[str, CellHistory] = {}
    series: dict[str, list[tuple[int, RowDoc]]] = {}
    for i, n in enumerate(order):
        for r in per_night[n]:
            series.setdefault(Row(r).key, []).append((i, r))
    for key, items in series.items():
        cell = CellHistory(key, Row(items[-1][1]))
        for j, (i, r) in enumerate(items):
            row = Row(r)
            cell.nights.append(order[i])
            cell.commits.append(row.commit)
            shown: dict[str, float] = {}
            for m, (rule, obs) in (observed(row, False, memo).items() if row.ok else ()):
                cell.rules.setdefault(m, rule)
                cell.values.setdefault(m, [None] * j)
                shown[m] = rule.show(obs.value)
            for m, column in cell.values.items():
                column.append(shown.get(m))
            if j == 0:
                continue
            prev = order[items[j - 1][0]]
            cands = [c for _, c in items[max(0, j - window):j]]
            for verdict in cell_verdicts(r, cands, spreads[order[i]], spreads[prev], memo):
                if verdict.verdict in CALLED:
                    cell.calls.append(Call(order[i], i, row.commit, row.recorded_at, verdict))
        for m, vals in cell.values.items():
            cell.steps[m] = _steps(cell, m, vals)
        cells[key] = cell
    return list(cells.values())


def _steps(cell: CellHistory, metric: str, vals: Sequence[float | None]) -> list[Step]:
    """Step changes of one metric over all of a cell's nights (nights without a value left out)."""
    idx = [i for i, v in enumerate(vals) if v is not None]
    present = [float(vals[i]) for i in idx]  # type: ignore[arg-type]
    rule = cell.rules[metric]
    return [Step(cell.nights[idx[c]], cell.commits[idx[c]], rule.show_change(d), verdict, len(present) - c)
            for c, verdict, d in find_steps(present, rule, recent=len(present))]


def regressions(cells: Sequence[CellHistory]) -> list[Call]:
    """Every regression called, newest first (the feed's entries)."""
    calls = [c for cell in cells for c in cell.calls if c.verdict.verdict == "regressed"]
    return sorted(calls, key=lambda c: (-c.index, c.verdict.key, c.verdict.metric))


def metric_unit(cell: CellHistory, metric: str) -> str:
    """The axis label of a metric's trend."""
    rule = cell.rules.get(metric)
    return f"{metric} ({rule.better} is better)" if rule else metric

