"""``--compare BASELINE``: a verdict per cell and metric against a baseline run or the history.

A baseline is a list of nights, oldest first, each the newest row per cell: one night for
a run folder (or its ``rows.jsonl``), up to ``window`` recent nights for the history store.
Per cell: no baseline row, or a different fingerprint (``suite.report.fingerprint``), gives
``incomparable``; a cell that was ``ok`` and now is not has ``regressed`` its status;
otherwise every metric is judged by ``suite.regression.verdicts.judge``. The markdown table is printed,
written next to the run (``verdicts.md``, ``verdicts.json``) and appended to
``$GITHUB_STEP_SUMMARY`` when that is set.
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tabulate import tabulate

from suite import jsonio
from suite.errors import UsageError
from suite.parts import RowDoc
from suite.regression.verdicts import MIN_HISTORY, Memo, Rule, judge, observed
from suite.report.fingerprint import differences, fingerprint
from suite.report.rows import Row, cell_label, latest_rows
from suite.report.store import ROWS, read_rows

HISTORY_FILE = "history.jsonl"
WINDOW = 14  # recent history nights a cell is compared with
ORDER = {"regressed": 0, "improved": 1, "incomparable": 2, "unchanged": 3}
#: (task, variant, quality metric) -> its std over seeds
Spread = dict[tuple[str, str, str], float]


@dataclass
class Baseline:
    source: str
    kind: str                               # "run" or "history"
    nights: list[list[RowDoc]]              # oldest first; each night's newest row per cell

    def rows_for(self, key: str, exclude: Mapping[str, object] | None = None) -> list[RowDoc]:
        out = [r for night in self.nights for r in night if Row(r).key == key]
        if exclude is not None:  # the history may already hold the run being judged
            ex = Row(exclude)
            out = [r for r in out if (Row(r).run_id, Row(r).recorded_at) != (ex.run_id, ex.recorded_at)]
        return out


@dataclass
class Verdict:
    key: str
    metric: str
    verdict: str
    baseline: str = "-"
    new: str = "-"
    change: str = "-"
    needed: str = "-"
    method: str = ""

    @property
    def cell(self) -> str:
        return cell_label(self.key)


def read_results(path: Path, asked: str) -> tuple[Path, list[RowDoc], bool]:
    """The rows of a run folder, a rows file, or a history store (folder or ``history.jsonl``): the file
    read, its rows, and whether they are a history's. ``asked``: how the command line named the path
    (``--compare``, ``publish``), for the one-line errors."""
    path = Path(path)
    if path.is_dir():
        file = next((path / f for f in (HISTORY_FILE, ROWS) if (path / f).exists()), None)
        if file is None:
            raise UsageError(f"{asked} {path}: no {ROWS} or {HISTORY_FILE} there; give a run folder "
                             f"(results/runs/...), its {ROWS}, or the history folder (results/history)")
        path = file
    if not path.exists():
        raise UsageError(f"{asked} {path} does not exist; give a run folder (results/runs/...), its {ROWS}, "
                         f"or the history folder (results/history)")
    rows = list(read_rows(path))
    if not rows:
        raise UsageError(f"{asked} {path} holds no rows; give a run that finished at least one cell")
    return path, rows, any(Row(r).in_history for r in rows)


def load_baseline(path: Path) -> Baseline:
    """A run folder, a rows file, or the history store (folder or ``history.jsonl``)."""
    file, rows, history = read_results(path, "--compare")
    if history:
        nights: dict[str, list[RowDoc]] = {}
        for r in rows:
            nights.setdefault(Row(r).night or "?", []).append(r)
        return Baseline(str(file), "history", [latest_rows(n) for n in nights.values()])
    return Baseline(str(file), "run", [latest_rows(rows)])


def compare_rows(rows: Sequence[Mapping[str, object]], baseline: Baseline, window: int = WINDOW) -> list[Verdict]:
    rows = latest_rows(rows)
    spread_new = seed_spread(rows)
    spread_old = seed_spread(baseline.nights[-1])
    out: list[Verdict] = []
    for row in rows:
        cands = baseline.rows_for(Row(row).key, exclude=row if baseline.kind == "history" else None)
        out += cell_verdicts(row, cands[-window:] if window else cands, spread_new, spread_old)
    return sorted(out, key=lambda v: (ORDER[v.verdict], v.key, v.metric))


def cell_verdicts(row: Mapping[str, object], cands: list[RowDoc], spread_new: Spread,
                  spread_old: Spread, memo: Memo | None = None) -> list[Verdict]:
    """The verdicts of one cell's new row against its earlier rows ``cands`` (oldest first); the spreads:
    ``seed_spread`` of the new night and of the newest baseline night. ``memo``: for a caller that judges
    the same rows many times (a replay of the history), where their observations are kept; the rows
    must stay alive while it is used."""
    new_row = Row(row)
    key = new_row.key
    if not cands:
        return [Verdict(key, "-", "incomparable", method="no baseline row for this cell")]
    fp = fingerprint(row)
    same = [Row(r) for r in cands if fingerprint(r) == fp]
    if not same:
        return [Verdict(key, "-", "incomparable", method="; ".join(differences(fingerprint(cands[-1]), fp)))]
    last, status = same[-1], new_row.status
    if not (new_row.ok and last.ok):
        verdict = "regressed" if last.ok else "improved" if new_row.ok else "unchanged"
        return [Verdict(key, "status", verdict, last.status, status, method="status")]
    device = new_row.device
    ok = [r for r in same if r.ok]
    # pairwise judging uses the newest night's bootstrap error; a history uses its spread
    base_obs = [observed(r, r is ok[-1] and len(ok) < MIN_HISTORY, memo) for r in ok]
    out = []
    new_obs = observed(new_row, True, memo)
    for metric, (rule, new) in new_obs.items():
        base = [o[metric][1] for o in base_obs if metric in o]
        if not base:
            out.append(Verdict(key, metric, "incomparable", new=_show(rule, new.value),
                               method="the baseline has no value for this metric"))
            continue
        group = (new_row.task, new_row.variant, metric)
        new.spread = spread_new.get(group, 0.0)
        base[-1].spread = spread_old.get(group, 0.0)
        j = judge(rule, new, base, device)
        out.append(Verdict(key, metric, j.verdict, _show(rule, j.reference), _show(rule, new.value),
                           rule.show_change(j.change), "±" + rule.show_change(j.threshold).lstrip("+"), j.method))
    gone = new_row.energy
    if "energy" not in new_obs and gone and any("energy" in o for o in base_obs):  # measured before, not now
        out.append(Verdict(key, "energy", "incomparable", method=f"energy {gone['status']} in the new row: "
                           f"{gone.get('reason', 'no figure')}"))
    return out


def seed_spread(rows: Sequence[Mapping[str, object]], memo: Memo | None = None) -> Spread:
    """Std over seeds of each quality metric per (task, variant), where several seeds exist."""
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in map(Row, rows):
        if r.ok:
            for m, (_, obs) in observed(r, False, memo).items():
                if m in r.metric_better:
                    values[(r.task, r.variant, m)].append(obs.value)
    return {k: float(np.std(v, ddof=1)) for k, v in values.items() if len(v) >= 2}


def _show(rule: Rule, v: float) -> str:
    x = rule.show(v)
    return f"{x:.4f}" if rule.metric == "ratio" else f"{x:.4g}"


def verdict_markdown(verdicts: list[Verdict], baseline: Baseline) -> str:
    counts = {v: sum(x.verdict == v for x in verdicts) for v in ORDER}
    nights = len(baseline.nights)
    head = [f"## Regression check against `{baseline.source}` "
            f"({'one run' if baseline.kind == 'run' else f'history of {nights} night(s)'})", "",
            ", ".join(f"**{n} {v}**" if v == "regressed" and n else f"{n} {v}" for v, n in counts.items()), ""]
    bad = sorted({v.cell for v in verdicts if v.verdict == "regressed"})
    if bad:
        head += ["Regressed cells: " + ", ".join(f"`{c}`" for c in bad), ""]
    table = [{"cell": v.cell, "metric": v.metric, "baseline": v.baseline, "new": v.new, "change": v.change,
              "needed": v.needed, "verdict": f"**{v.verdict}**" if v.verdict == "regressed" else v.verdict,
              "how": v.method} for v in verdicts]
    foot = ["", "A change is called only when it exceeds both the noise (bootstrap over timing rounds plus the "
            "night-to-night spread, or seed spread) and the metric's minimum effect; `needed` is that size."]
    return "\n".join(head + [tabulate(table, headers="keys", tablefmt="github", disable_numparse=True)] + foot) + "\n"


def publish(verdicts: list[Verdict], baseline: Baseline, out_dir: Path | None) -> str:
    """Print the table, keep it next to the run, and add it to the GitHub job summary."""
    md = verdict_markdown(verdicts, baseline)
    print(md)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "verdicts.md").write_text(md)
        jsonio.write_atomic(Path(out_dir) / "verdicts.json",
                            {"baseline": baseline.source, "verdicts": [asdict(v) for v in verdicts]})
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(md + "\n")
    return md


def regressed_cells(verdicts: list[Verdict]) -> list[str]:
    return sorted({f"{v.cell} ({v.metric} {v.change})" for v in verdicts if v.verdict == "regressed"})
