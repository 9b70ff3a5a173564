"""The deployment matrix: each variant's latency ratio to the baseline (``ln`` unless the sweep's
``--baseline`` said otherwise) under every runtime and precision measured."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from tabulate import tabulate

from suite.measure.interleave import RatioCI, ratio_ci
from suite.report.rows import Row, baseline_of

#: one cell of the matrix: the pooled ratio, or the status word where there is none ("n/a", "error", "-")
Cell = RatioCI | str


def machine(row: Row) -> str:
    """Where a row was measured, as section titles name it: the GPU and driver, or the CPU and threads."""
    dev = row.device_info
    if row.device == "cuda":
        return f"GPU: {dev.get('name', '?')} (driver {dev.get('driver', '?')})"
    return f"CPU: {dev.get('cpu', '?')}, {dev.get('torch_threads', '?')} threads"


def pooled_ratio(ok: list[Row], base: str) -> RatioCI | None:
    """The latency ratio to ``base`` pooled over seeds from the paired per-round log ratios."""
    logs = [x for r in ok if r.ratio_baseline == base for x in r.log_ratios]
    return ratio_ci(logs, baseline=base) if logs else None


def deployment_matrices(rows: Iterable[Mapping[str, object]]) -> list[str]:
    """Per task (and profile, device, data) measured under more than one runtime or precision: the
    variants' batch-1 latency ratio to ``ln`` in each, one column per (runtime, precision)."""
    groups: dict[tuple, list[Row]] = {}
    for r in map(Row, rows):
        groups.setdefault((r.task, r.profile, machine(r), r.dataset_label), []).append(r)
    out: list[str] = []
    for (task, profile, where, data), views in groups.items():
        columns = list(dict.fromkeys((r.runtime, r.precision) for r in views))
        if len(columns) < 2:
            continue
        out += [f"## Deployment matrix: {task} · profile {profile} · {where} · data: {data}", "",
                f"Batch-1 latency of each deployed variant as a ratio to `{baseline_of(views)}` under the same "
                "runtime and precision "
                "(paired per interleaved round, 95% interval); lower is faster. `n/a`: not applicable here; "
                "`error`: the runtime could not build the model (reasons in the sections above).", "",
                tabulate(matrix_lines(views, columns), headers="keys", tablefmt="github", disable_numparse=True), ""]
    return out


def matrix_cells(views: list[Row], columns: list[tuple[str, str]]) -> dict[str, dict[tuple[str, str], Cell]]:
    """variant -> (runtime, precision) -> a ``RatioCI``, or the status word when there is no ratio."""
    variants = list(dict.fromkeys(r.variant for r in views))
    base = baseline_of(views)
    variants.sort(key=lambda v: v != base)
    cells: dict[str, dict[tuple[str, str], Cell]] = {}
    for v in variants:
        for col in columns:
            mine = [r for r in views if r.variant == v and (r.runtime, r.precision) == col]
            ok = [r for r in mine if r.ok]
            ci = pooled_ratio(ok, base) if ok else None
            if ci is None and ok and v == base:
                ci = RatioCI(1.0, 1.0, 1.0, 0, base)
            word = {"not-applicable": "n/a"}.get(mine[0].status, mine[0].status) if mine and not ok else "-"
            cells.setdefault(v, {})[col] = ci if ci is not None else word
    return cells


def matrix_lines(views: list[Row], columns: list[tuple[str, str]]) -> list[dict[str, str]]:
    lines = []
    for v, cells in matrix_cells(views, columns).items():
        line = {"variant": v}
        for (runtime, precision), c in cells.items():
            line[f"{runtime} {precision}"] = c if isinstance(c, str) else f"{c.value:.3f} [{c.lo:.3f}, {c.hi:.3f}]"
        lines.append(line)
    return lines


