"""The published site in a real browser: Debian's Chromium, headless, driven by Selenium (``tests/browser.py``).

One site for the module (the default run, a run whose message holds a script, the runtime-matrix
run, a 7-night history with a latency step of ``un``), opened from ``file://``: no console errors and
nothing fetched but the site's own files; filters, sorting and the query string; the injected
regression on the history page; row strings shown as text, never run. Where Chromium is missing the
tests skip, except under ``NORMBENCH_REQUIRE_BROWSER=1`` (``.ci/run`` sets it after installing it).
"""
from __future__ import annotations

import time
from pathlib import Path

import browser
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from test_site import HOSTILE, STEP_NIGHT, write_inputs

from suite.cli.main import main


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    assert main(["publish", *map(str, write_inputs(folder)), "--out", str(folder / "site")]) == 0
    return folder / "site"


def _open(b: browser.Browser, page: Path, query: str = "") -> None:
    b.open(page, query)
    for _ in range(200):   # the script marks the page once it has applied the view
        if b.driver.execute_script("return document.body.dataset.ready") == "yes":
            return
        time.sleep(0.05)
    raise AssertionError(f"{page.name}{query}: the page script never finished")


def _visible(b: browser.Browser, css: str) -> list:
    return [e for e in b.driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def _column(b: browser.Browser, table: object, key: str) -> list[str]:
    headers = [th.get_attribute("data-key") for th in table.find_elements(By.CSS_SELECTOR, "thead th")]  # type: ignore[attr-defined]
    i = headers.index(key)
    return [tr.find_elements(By.TAG_NAME, "td")[i].text for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")  # type: ignore[attr-defined]
            if tr.is_displayed()]


def _numbers(texts: list[str]) -> list[float]:
    return [float(t.split()[0]) for t in texts if t.strip() not in ("", "-")]


def test_pages_load_with_no_console_errors_and_fetch_only_their_own_files(
        chromium: browser.Browser, site: Path) -> None:
    chromium.requests()   # what earlier tests loaded
    for page in ("index.html", "history.html"):
        _open(chromium, site / page)
        assert chromium.console_errors() == [], page
        fetched = chromium.requests()
        assert fetched and all(u.startswith(f"file://{site}/") for u in fetched), fetched
        assert any(u.endswith("assets/site.js") for u in fetched)


def test_a_task_in_the_query_string_shows_only_its_sections(chromium: browser.Browser, site: Path) -> None:
    _open(chromium, site / "index.html", "?task=wikitext")
    shown = _visible(chromium, "section.board")
    assert shown and {s.get_attribute("data-task") for s in shown} == {"wikitext"}
    hidden = [s for s in chromium.driver.find_elements(By.CSS_SELECTOR, "section.board") if not s.is_displayed()]
    assert {s.get_attribute("data-task") for s in hidden} >= {"imagenet", "coco"}
    assert {f.get_attribute("data-task") for f in _visible(chromium, "figure.chart")} == {"wikitext"}
    box = chromium.driver.find_element(By.CSS_SELECTOR, "input[name=task][value=wikitext]")
    assert box.is_selected()   # the controls show the view the address asked for


def test_sorting_by_latency_orders_the_rows_and_the_address_keeps_the_view(
        chromium: browser.Browser, site: Path) -> None:
    _open(chromium, site / "index.html", "?task=imagenet&sort=latency")
    tables = [s.find_element(By.CSS_SELECTOR, "table.sortable") for s in _visible(chromium, "section.board")]
    assert tables
    for table in tables:
        values = _numbers(_column(chromium, table, "latency"))
        assert len(values) >= 2 and values == sorted(values), values
    tables[0].find_element(By.CSS_SELECTOR, "th[data-key=latency] button").click()   # again: descending
    values = _numbers(_column(chromium, tables[0], "latency"))
    assert values == sorted(values, reverse=True), values
    assert "sort=latency" in chromium.driver.current_url and "dir=desc" in chromium.driver.current_url
    chromium.driver.find_element(By.CSS_SELECTOR, "input[name=variant][value=crms]").click()
    url = chromium.driver.current_url
    assert "variant=crms" in url and "task=imagenet" in url
    rows = _visible(chromium, "section.board tbody tr")
    assert rows and {r.get_attribute("data-variant") for r in rows} == {"crms"}
    _open(chromium, site / "index.html", "?" + url.split("?", 1)[1])   # the link restores the view
    assert {r.get_attribute("data-variant") for r in _visible(chromium, "section.board tbody tr")} == {"crms"}
    assert chromium.driver.find_element(By.ID, "view-link").text == "?" + url.split("?", 1)[1]


def test_the_injected_regression_has_its_marker_and_the_regressions_view(
        chromium: browser.Browser, site: Path) -> None:
    _open(chromium, site / "history.html")
    un = chromium.driver.find_element(By.CSS_SELECTOR, "section.cell[data-variant=un]")
    assert un.get_attribute("data-regressed") == "yes"
    calls = [tr.text for tr in un.find_elements(By.CSS_SELECTOR, "tr.call.regressed")]
    assert any(f"n{STEP_NIGHT:04d}" in c and "ratio_to_ln" in c for c in calls), calls
    chart = un.find_element(By.TAG_NAME, "img")
    assert chromium.driver.execute_script("return arguments[0].naturalWidth", chart) > 0   # the SVG rendered
    listed = [tr.text for tr in _visible(chromium, "#regressions tr.regression")]
    assert any("imagenet/un/s0" in t for t in listed), listed
    cells = len(chromium.driver.find_elements(By.CSS_SELECTOR, "section.cell"))
    _open(chromium, site / "history.html", "?view=regressions")
    shown = _visible(chromium, "section.cell")
    assert any(s.get_attribute("data-variant") == "un" for s in shown)
    assert all(s.get_attribute("data-regressed") == "yes" for s in shown)
    assert len(shown) < cells   # cells without a regression are left out
    assert chromium.console_errors() == []


def test_a_script_in_a_row_message_is_shown_as_text_and_never_runs(chromium: browser.Browser, site: Path) -> None:
    _open(chromium, site / "index.html", "?task=wikitext")
    with pytest.raises(NoAlertPresentException):
        chromium.driver.switch_to.alert.text   # noqa: B018 - alert(1) or alert(2) would be open
    body = chromium.driver.find_element(By.TAG_NAME, "body").text
    assert HOSTILE in body and "crms<b>x</b>" in body
    assert chromium.driver.execute_script("return document.querySelectorAll('section.board script, b').length") == 0
