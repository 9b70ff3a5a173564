"""The browser harness itself (``tests/browser.py``), on tiny pages written here: a page sees its query
string, and the harness reports what a page got wrong (a console error, a missing file, a load from
the network, which the browser refuses to resolve but still records).

The browser starts once for the module (the ``chromium`` fixture of ``conftest.py``).
"""
from __future__ import annotations

import time
from pathlib import Path

import browser


def _page(folder: Path, name: str, body: str) -> Path:
    page = folder / name
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title></head>"
                    f"<body>{body}</body></html>")
    return page


def _fresh(b: browser.Browser) -> None:
    """Drop what an earlier test left in the logs (each call returns only what came since the last)."""
    b.console_errors()
    b.requests()


def test_query_string_reaches_the_page_and_a_clean_page_logs_no_errors(
        chromium: browser.Browser, tmp_path: Path) -> None:
    _fresh(chromium)
    page = _page(tmp_path, "query.html", '<p id="q">unset</p>'
                 '<script>document.getElementById("q").textContent = location.search;</script>')
    chromium.open(page, "?x=1")
    assert chromium.driver.find_element("id", "q").text == "?x=1"
    assert chromium.console_errors() == []
    assert chromium.requests() == [page.resolve().as_uri() + "?x=1"]


def test_console_errors_missing_files_and_network_loads_are_reported(
        chromium: browser.Browser, tmp_path: Path) -> None:
    _fresh(chromium)
    broken = _page(tmp_path, "broken.html", '<img src="missing.png"><script>console.error("boom");</script>')
    chromium.open(broken)
    errors: list[str] = []
    deadline = time.monotonic() + 10   # the console's entries reach the log on their own schedule (a busy machine)
    while not (any('"boom"' in e for e in errors) and any("missing.png" in e for e in errors)) \
            and time.monotonic() < deadline:
        errors += chromium.console_errors()
        time.sleep(0.05)
    assert any('"boom"' in e for e in errors), errors
    assert any("missing.png" in e and "ERR_FILE_NOT_FOUND" in e for e in errors), errors

    remote = _page(tmp_path, "remote.html", '<img src="http://example.com/a.png">')
    chromium.open(remote)
    requested = chromium.requests()
    # the harness exists to catch this: a page that asks anything of the network
    assert [u for u in requested if not u.startswith("file://")] == ["http://example.com/a.png"], requested
    # and the browser never reaches it: every host name resolves nowhere
    assert any("example.com" in e and "ERR_NAME_NOT_RESOLVED" in e for e in chromium.console_errors())
