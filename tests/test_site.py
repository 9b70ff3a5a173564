"""``publish``: the static site from the default run, a run with several runtimes and a generated history.

Checked on the files (the browser tests in ``test_site_browser.py`` check them rendered): nothing is
loaded from the network, every referenced file is there, strings from rows are escaped, the feed
names the injected regression, and bad input is one line with exit 2.
"""
from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from suite.cli.main import main
from suite.report.store import read_rows

import synth
from conftest import ROOT

DEFAULT_RUN = ROOT / "results" / "reference" / "default-smoke-cpu-amd-epyc"
RUNTIMES_RUN = ROOT / "results" / "reference" / "runtimes-smoke-cpu"
#: the history's injected regression: un's latency 25% up from this night on
STEP_NIGHT = 5
HOSTILE = "<script>alert(1)</script>"


class Links(HTMLParser):
    """Every URL an HTML page refers to, and whether it holds an inline script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action", "poster", "data") and v]
        if tag == "script" and not a.get("src"):
            self.inline.append("script")
        if "style" in a or tag == "style" or any(k.startswith("on") for k in a):
            self.inline.append(tag)


def write_inputs(folder: Path) -> list[Path]:
    """The default run, a run with a hostile message, the runtime-matrix run, a 7-night history."""
    hostile = folder / "hostile"
    hostile.mkdir()
    rows = list(read_rows(DEFAULT_RUN / "rows.jsonl"))
    bad = copy.deepcopy(next(r for r in rows if r["task"] == "wikitext" and r["variant"] == "crms"))
    bad.update(status="error", message=f"worker died: {HOSTILE} & <img src=x onerror=alert(2)>",
               key=bad["key"].replace("crms", "crms<b>x</b>"), variant="crms<b>x</b>")
    (hostile / "rows.jsonl").write_text(json.dumps(bad) + "\n")
    synth.write_history(folder / "history", 7, changes={STEP_NIGHT: synth.Change(latency={"un": 1.25})})
    return [DEFAULT_RUN, hostile, RUNTIMES_RUN, folder / "history"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    out = folder / "site"
    assert main(["publish", *map(str, write_inputs(folder)), "--out", str(out)]) == 0
    return out


def test_the_site_loads_nothing_from_the_network_and_every_file_it_names_is_there(site: Path) -> None:
    pages = sorted(site.glob("*.html"))
    assert [p.name for p in pages] == ["history.html", "index.html"]
    for page in pages:
        links = Links()
        links.feed(page.read_text())
        assert not links.inline, (page.name, links.inline)   # the CSP forbids them; none is needed
        for url in links.urls:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", url, re.I), (page.name, url)   # no scheme: local
            target = url.split("#")[0].split("?")[0]
            assert not target or (site / target).is_file(), (page.name, url)
        assert "default-src 'none'" in page.read_text()
    for svg in (site / "plots").glob("*.svg"):
        text = svg.read_text()
        assert "<script" not in text and not re.search(r'(?:xlink:)?href="(?:https?:)?//', text), svg.name
    assert not re.search(r"url\(|@import", (site / "assets" / "site.css").read_text())
    assert not re.search(r"fetch\(|XMLHttpRequest|import\(|https?://", (site / "assets" / "site.js").read_text())


def test_the_leaderboard_has_every_section_its_charts_and_the_raw_rows(site: Path) -> None:
    html = (site / "index.html").read_text()
    for task in ("imagenet", "coco", "wikitext"):
        assert f'data-task="{task}"' in html
    assert html.count('class="board filterable"') >= 3 + 4   # the default run's and the runtimes'
    assert 'data-key="latency"' in html and 'data-key="ratio"' in html and 'data-key="verdict"' in html
    assert "embedded data" in html and "CPU figures" in html
    kinds = {p.name.split("-")[0] for p in (site / "plots").glob("*.svg")}
    assert {"matrix", "pareto", "curves", "history"} <= kinds
    raw = re.findall(r'href="(rows/[^"]+\.json)"', html)
    assert raw and all(json.loads((site / r).read_text())["key"] for r in raw)


def test_strings_from_rows_are_escaped_everywhere(site: Path) -> None:
    html = (site / "index.html").read_text()
    assert HOSTILE not in html and "<b>x</b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "crms&lt;b&gt;x&lt;/b&gt;" in html


def test_the_history_marks_the_injected_regression_and_the_feed_names_it(site: Path) -> None:
    html = (site / "history.html").read_text()
    cell = re.search(r'<section class="cell filterable" id="(cell-[^"]*un[^"]*)"[^>]*data-regressed="yes"', html)
    assert cell, "the un cell is marked regressed"
    assert f"n{STEP_NIGHT:04d}" in html and f"{STEP_NIGHT:04x}aaaa" in html   # the night and its commit
    feed = ET.parse(site / "feed.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in feed.findall("a:entry", ns)]
    ours = [e for e in feed.findall("a:entry", ns) if (e.findtext("a:title", namespaces=ns) or "").startswith(
        "imagenet/un/s0: ratio_to_ln regressed +")]
    assert ours and f"night n{STEP_NIGHT:04d}" in (ours[0].findtext("a:summary", namespaces=ns) or ""), titles


def test_publish_replaces_its_own_site_and_refuses_anything_else(
        site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "again"
    assert main(["publish", str(DEFAULT_RUN), "--out", str(out)]) == 0
    stale = out / "plots" / "stale.svg"
    stale.write_text("<svg/>")
    assert main(["publish", str(DEFAULT_RUN), "--out", str(out)]) == 0
    assert not stale.exists() and (out / "index.html").exists()   # replaced whole
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    for argv, expected in ((["publish", str(DEFAULT_RUN), "--out", str(tmp_path / "mine")], "publish did not write"),
                           (["publish", str(DEFAULT_RUN), "--out", str(tmp_path / "file")], "is a file"),
                           (["publish", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "does not exist"),
                           (["publish", str(tmp_path / "mine"), "--out", str(tmp_path / "o")], "no rows.jsonl")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_every_registered_norm_has_its_own_fixed_colour() -> None:
    from suite.report.colours import BASELINE_COLOUR, variant_colour
    from suite.variants import NORMS
    colours = {n: variant_colour(n) for n in NORMS.names()}
    assert colours["ln"] == BASELINE_COLOUR and len(set(colours.values())) == len(colours), colours
    assert variant_colour("my-plugin+sla") == variant_colour("my-plugin+sla")   # by name alone
