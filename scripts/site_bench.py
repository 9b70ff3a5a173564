"""Benchmark: ``publish`` of a long history, and the time its pages take to first render in Chromium.

Generates a history of ``--nights`` nights x ``--cells`` cells (the tests' synthetic nights,
``tests/synth.py``: three variants x seeds, realistic timing noise, a latency step of ``un`` four
nights before the end), publishes it with the default run beside it, then opens ``index.html`` and
``history.html`` ``--loads`` times each in headless Chromium (``tests/browser.py``) and reads the
browser's own paint timing (first contentful paint) and load event. Writes ``summary.json`` and
``summary.md`` to ``--out``, with the CPU named, and a screenshot of each page (``index.png``: the
wikitext sections sorted by latency; ``history.png``: the regressions view of ``un``). Usage (about
5 minutes on 2 cores): ``.venv/bin/python scripts/site_bench.py --out results/reference/site-bench-<cpu>``
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import browser  # noqa: E402

from suite.measure.env import cpu_name  # noqa: E402

import synth  # noqa: E402

DEFAULT_RUN = REPO / "results" / "reference" / "default-smoke-cpu-amd-epyc"
PAINT = ("const p = performance.getEntriesByName('first-contentful-paint')[0];"
         "const n = performance.getEntriesByType('navigation')[0];"
         "return [p ? p.startTime : null, n ? n.loadEventEnd : null, document.querySelectorAll('section').length];")


def render_times(b: browser.Browser, page: Path, loads: int) -> dict[str, object]:
    fcp, load = [], []
    sections = 0
    for _ in range(loads):
        b.open(page)
        deadline = time.monotonic() + 60
        while b.driver.execute_script("return document.body.dataset.ready") != "yes" and time.monotonic() < deadline:
            time.sleep(0.02)
        first, loaded, sections = b.driver.execute_script(PAINT)
        fcp.append(first)
        load.append(loaded)
    errors = b.console_errors()
    return {"first_contentful_paint_ms": [round(x, 1) for x in fcp if x is not None],
            "load_event_ms": [round(x, 1) for x in load if x is not None],
            "median_fcp_ms": round(statistics.median(x for x in fcp if x is not None), 1) if any(fcp) else None,
            "median_load_ms": round(statistics.median(x for x in load if x is not None), 1) if any(load) else None,
            "sections": sections, "console_errors": errors, "bytes": page.stat().st_size}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--nights", type=int, default=400)
    ap.add_argument("--cells", type=int, default=30, help="a multiple of 3 (three variants x seeds)")
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    why = browser.available()
    if why is not None:
        sys.exit(f"site_bench: {why}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="site-bench-"))
    t0 = time.perf_counter()
    noise = synth.Noise(seeds=tuple(range(args.cells // 3)))
    history = synth.write_history(work / "history", args.nights, noise,
                                  changes={args.nights - 4: synth.Change(latency={"un": 1.25})})
    generated_s = time.perf_counter() - t0
    site = work / "site"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(REPO / "run_suite.py"), "publish", str(DEFAULT_RUN),
                          str(history.parent), "--out", str(site)], capture_output=True, text=True, cwd=REPO)
    publish_s = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"site_bench: publish failed: {out.stderr[-2000:]}")
    b = browser.start()
    try:
        pages = {name: render_times(b, site / name, args.loads) for name in ("index.html", "history.html")}
        for name, query, shot in (("index.html", "?task=wikitext&sort=latency", "index.png"),
                                  ("history.html", "?view=regressions&variant=un", "history.png")):
            b.open(site / name, query)
            time.sleep(1.0)
            b.screenshot(args.out / shot)
    finally:
        b.quit()
    summary = {
        "date": dt.date.today().isoformat(), "cpu": cpu_name(), "cores": __import__("os").cpu_count(),
        "python": platform.python_version(), "nights": args.nights, "cells": args.cells,
        "history_mb": round(history.stat().st_size / 1e6, 1), "generate_s": round(generated_s, 1),
        "publish_wall_s": round(publish_s, 1), "publish_says": out.stderr.strip().splitlines()[-1],
        "site_mb": round(sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6, 1),
        "chromium": subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip(),
        "pages": pages,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# publish of {args.nights} nights x {args.cells} cells, {summary['cpu']} ({summary['cores']} cores)",
             "", f"- history: {summary['history_mb']} MB of JSON lines (generated in {summary['generate_s']} s)",
             f"- `publish` (whole command, Python start-up included): {summary['publish_wall_s']} s; "
             f"it says: {summary['publish_says']}", f"- site: {summary['site_mb']} MB", "",
             f"Headless {summary['chromium']}, {args.loads} loads of each page from file:// "
             "(the browser's first contentful paint and load event, ms after navigation start):", "",
             "| page | bytes | sections | median first paint ms | median load ms | console errors |",
             "|---|---|---|---|---|---|"]
    for name, p in pages.items():
        lines.append(f"| {name} | {p['bytes']} | {p['sections']} | {p['median_fcp_ms']} | {p['median_load_ms']} | "
                     f"{len(p['console_errors'])} |")  # type: ignore[arg-type]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
