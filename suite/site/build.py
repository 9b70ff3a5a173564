"""``publish``: a static site from run folders and history stores.

The site is plain files: ``index.html`` (the leaderboard, filterable and sortable, with the deployment
matrices, Pareto fronts and learning curves of each task), ``history.html`` (every cell's metrics over
the nights, the calls of each night, a regressions-only view), ``feed.xml`` (an Atom feed of the
regressions), ``rows/`` (each leaderboard row as recorded), ``plots/`` (SVG, drawn by matplotlib) and
``assets/`` (the site's own stylesheet and script, shipped in this package). Nothing is loaded from
the network, so it works from ``file://`` as from GitHub Pages. Every string that comes from rows is
escaped by Jinja2's autoescaping; the pages forbid inline scripts through their content security policy.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2

from suite import jsonio
from suite.env import now_iso
from suite.errors import UsageError
from suite.parts import RowDoc
from suite.regression.compare import read_results
from suite.report.colours import variant_colour
from suite.report.fingerprint import fingerprint, fingerprint_id
from suite.report.leaderboard import LEGEND, Section, leaderboard_sections
from suite.report.plots import curve_plots, matrix_heatmaps, pareto_plots, slug
from suite.report.rows import Row
from suite.site.charts import history_chart
from suite.site.feed import write_feed
from suite.site.history import Call, CellHistory, cell_histories, regressions

MARKER = ".normbench-site"   # a folder publish wrote, which it may replace
#: column header (its start) -> the short key a view names in ``?sort=``
COLUMN_KEYS = (("variant", "variant"), ("status", "status"), ("p50 ms", "latency"), ("ratio to", "ratio"),
               ("peak MB", "memory"), ("mJ/inf", "energy"), ("gen ms/tok", "generation"), ("params", "params"),
               ("GFLOPs", "flops"),
               ("deploy err", "deploy_err"), ("seeds", "seeds"), ("data", "data"), ("verdict", "verdict"),
               ("Δ", "delta"), ("agree", "agree"), ("build s", "build"))
FILTERS = ("task", "variant", "runtime", "precision", "device")


@dataclass
class Inputs:
    runs: list[RowDoc] = field(default_factory=list)
    history: list[RowDoc] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class Published:
    out: Path
    sections: int
    cells: int
    nights: int
    regressions: int
    seconds: float


def load_inputs(paths: Sequence[Path]) -> Inputs:
    """Run folders, rows files, history folders and history files, each told apart by its rows."""
    got = Inputs()
    for p in paths:
        file, rows, history = read_results(p, "publish")
        (got.history if history else got.runs).extend(rows)
        got.sources.append(str(file))
    return got


def publish(paths: Sequence[Path], out: Path) -> Published:
    """Build the site from ``paths`` into ``out`` (replaced whole, so a page never mixes two builds)."""
    t0 = time.perf_counter()
    got = load_inputs(paths)
    out = Path(out)
    _check_out(out)
    board = got.runs or _newest_night(got.history)
    cells = cell_histories(got.history) if got.history else []
    called = regressions(cells)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        sections = _write_site(tmp, board, cells, called, got)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    nights = len({Row(r).night for r in got.history})
    return Published(out, len(sections), len(cells), nights, len(called), time.perf_counter() - t0)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"--out {out} is a folder publish did not write; give an empty or new folder")


def _swap(new: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(new, out)
    out.chmod(0o755)   # mkdtemp made it private
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _newest_night(history: Sequence[RowDoc]) -> list[RowDoc]:
    if not history:
        return []
    last = Row(history[-1]).night
    return [r for r in history if Row(r).night == last]


def newest_per_machine(rows: Sequence[RowDoc]) -> list[RowDoc]:
    """The newest row of each cell on each machine and software (runs of one cell on two machines are
    two sections, not one replacing the other)."""
    newest: dict[tuple[str, str], RowDoc] = {}
    for r in rows:
        newest[(Row(r).key, fingerprint_id(fingerprint(r)))] = r
    return list(newest.values())


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("suite.site", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["colour"] = variant_colour
    env.filters["slug"] = lambda s: slug(s)
    return env


def _write_site(site: Path, board: list[RowDoc], cells: list[CellHistory], called: list[Call],
                got: Inputs) -> list[Section]:
    for sub in ("plots", "rows", "assets"):
        (site / sub).mkdir()
    assets = resources.files("suite.site") / "assets"
    for item in assets.iterdir():
        if item.is_file():
            (site / "assets" / item.name).write_bytes(item.read_bytes())
    rows = newest_per_machine(board)
    sections = leaderboard_sections(rows, newest=False)
    raw = {}
    for r in rows:
        name = f"{slug(Row(r).key)}.json"
        (site / "rows" / name).write_text(jsonio.dumps(r, indent=2) + "\n")
        raw[id(r)] = f"rows/{name}"
    env = _environment()
    common = {"generated": now_iso(), "sources": got.sources, "colour": variant_colour}
    charts = _charts(rows, site / "plots")
    views = [_section_view(s, raw) for s in sections]
    (site / "index.html").write_text(env.get_template("index.html.j2").render(
        **common, page="index", legend=LEGEND, sections=views, charts=charts,
        options=_options(views, charts), notices=_notices(views), has_history=bool(cells)))
    cell_views = [_cell_view(c, site / "plots") for c in cells]
    (site / "history.html").write_text(env.get_template("history.html.j2").render(
        **common, page="history", cells=cell_views, regressions=[_call_view(c) for c in called],
        options=_options(cell_views, []), notices=_notices(cell_views)))
    write_feed(site / "feed.xml", called, got.sources)
    (site / MARKER).write_text("written by `run_suite.py publish`; publish replaces this folder\n")
    return sections


def _column_key(header: str) -> str:
    for start, key in COLUMN_KEYS:
        if header.startswith(start):
            return key
    first = header.split(" ")[0]
    return "throughput" if first.endswith("/s") else slug(first).lower()   # "tok/s ↑", "img/s ↑"


def _provenance(rows: Sequence[Row]) -> dict[str, object]:
    first = rows[0]
    dev = first.device_info
    libs = first.at(("provenance", "libraries"))
    return {
        "hardware": ", ".join(str(x) for x in (dev.get("name"), dev.get("cpu") if dev.get("cpu") != dev.get("name")
                                                  else None, dev.get("cpu_isa"),
                                                  f"{dev.get('torch_threads')} torch threads"
                                                  if dev.get("torch_threads") else None) if x),
        "device_type": str(dev.get("type") or first.device),
        "software": ", ".join(f"{k} {v}" for k, v in libs.items()) if isinstance(libs, Mapping) else "-",
        "fingerprint": fingerprint_id(fingerprint(first.d)),
        "data": first.dataset_label,
        "embedded": any(r.dataset_kind == "embedded" for r in rows),
        "seeds": ", ".join(str(s) for s in sorted({r.seed for r in rows})),
        "commits": ", ".join(sorted({(r.commit or "unrecorded")[:12] for r in rows})),
        "recorded": _span(sorted({(r.recorded_at or "?")[:19] for r in rows})),
    }


def _span(times: list[str]) -> str:
    """The first and the last of sorted times (one, where all are the same)."""
    return times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"


def _section_view(s: Section, raw: dict[int, str]) -> dict[str, object]:
    headers = list(s.lines[0]) if s.lines else []
    by_variant: dict[str, list[Row]] = {}
    for r in s.rows:
        by_variant.setdefault(r.variant, []).append(r)
    lines = [{"variant": ln["variant"], "cells": [ln.get(h, "") for h in headers],
              "raw": [raw[id(r.d)] for r in by_variant.get(ln["variant"], []) if id(r.d) in raw]} for ln in s.lines]
    prov = _provenance(s.rows)
    return {"id": slug("section", s.task, s.profile, s.where, s.data, s.runtime, s.precision, s.group),
            "title": s.title, "task": s.task, "runtime": s.runtime, "precision": s.precision,
            "device": prov["device_type"], "variants": [ln["variant"] for ln in s.lines], "columns":
            [{"label": h, "key": _column_key(h)} for h in headers], "lines": lines,
            "preamble": s.preamble, "notes": s.notes, "provenance": prov}


def _charts(rows: list[RowDoc], plots: Path) -> list[dict[str, str]]:
    """The SVG charts of each (task, device): deployment matrix, Pareto front, learning curves."""
    groups: dict[tuple[str, str], list[RowDoc]] = {}
    for r in rows:
        groups.setdefault((Row(r).task, Row(r).device), []).append(r)
    out = []
    for (task, device), views in groups.items():
        for kind, draw in (("matrix", matrix_heatmaps), ("pareto", pareto_plots), ("curves", curve_plots)):
            for title, name in draw(views, plots, fmt="svg"):
                out.append({"task": task, "device": device, "kind": kind, "title": title, "src": f"plots/{name}"})
    return out


def _cell_view(c: CellHistory, plots: Path) -> dict[str, object]:
    name = f"history-{slug(c.key)}.svg"
    history_chart(c, plots / name)
    r = c.row
    steps = [{"metric": m, "night": s.night, "commit": (s.commit or "unrecorded")[:12], "change": s.change,
              "verdict": s.verdict} for m, ss in c.steps.items() for s in ss]
    return {"id": f"cell-{slug(c.key)}", "label": c.label, "task": r.task, "variant": r.variant,
            "runtime": r.runtime, "precision": r.precision, "device": str(r.device_info.get("type") or r.device),
            "regressed": c.regressed, "nights": len(c.nights), "chart": f"plots/{name}",
            "calls": [_call_view(x) for x in reversed(c.calls)], "steps": steps,
            "provenance": _provenance([r]), "variants": [r.variant]}


def _call_view(c: Call) -> dict[str, object]:
    v = c.verdict
    return {"night": c.night, "commit": (c.commit or "unrecorded")[:12], "recorded_at": (c.recorded_at or "")[:19],
            "cell": v.cell, "cell_id": f"cell-{slug(v.key)}", "metric": v.metric, "verdict": v.verdict,
            "baseline": v.baseline, "new": v.new, "change": v.change, "needed": v.needed, "method": v.method}


def _options(views: Sequence[Mapping[str, object]], charts: Sequence[Mapping[str, str]]) -> dict[str, list[str]]:
    """The values each filter offers, in the order they first appear."""
    out: dict[str, list[str]] = {f: [] for f in FILTERS}
    for v in [*views, *charts]:
        for f in FILTERS:
            given = v.get("variants") if f == "variant" else [v.get(f)]
            for x in given if isinstance(given, list) else []:
                if isinstance(x, str) and x and x not in out[f]:
                    out[f].append(x)
    return out


def _notices(views: Sequence[Mapping[str, object]]) -> list[str]:
    """What the page says before any table: embedded data, CPU figures."""
    provs = [v["provenance"] for v in views if isinstance(v.get("provenance"), Mapping)]
    out = []
    if any(p["embedded"] for p in provs):  # type: ignore[index]
        out.append("Embedded data: some sections were trained and evaluated on the small data shipped with the "
                   "suite, not on ImageNet, COCO or WikiText; their quality figures are smoke checks, not results.")
    if any(p["device_type"] == "cpu" for p in provs):  # type: ignore[index]
        out.append("CPU figures: some sections were measured on a CPU; their latency and memory say nothing about "
                   "a GPU.")
    return out
