"""A real headless browser for the tests: Debian's Chromium, driven by Selenium through chromedriver.

``start()`` launches the system ``chromium`` through the system ``chromedriver`` (Selenium Manager
is never asked to fetch a driver or a browser: neither can be downloaded here), headless, without
the sandbox (the tests run as root), with every host name resolving nowhere and background
networking off, so a page can load nothing but files. The browser's console and its network events
are logged, so a test can ask for the errors a page raised and for every URL it requested.
Nothing is installed here: ``.ci/run`` installs the Debian packages ``chromium`` and
``chromium-driver``; ``available()`` says why a browser cannot start.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "/usr/bin/chromium")
CHROMEDRIVER = ("chromedriver", "/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking", "--disable-component-update",
         "--disable-default-apps", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--allow-file-access-from-files")


def _find(names: tuple[str, ...]) -> str | None:
    return next((p for p in (shutil.which(names[0]), names[1]) if p and Path(p).exists()), None)


def available() -> str | None:
    """None where a browser can start here, else why not (one line, with the fix)."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed: make venv (it is in the test dependencies)"
    missing = [n[0] for n in (CHROMIUM, CHROMEDRIVER) if _find(n) is None]
    if missing:
        return f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver"
    return None


class Browser:
    """One headless Chromium; ``driver`` is Selenium's, for element queries."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, page: Path, query: str = "") -> None:
        """Load a local HTML file, with a query string (``?task=wikitext``) if given."""
        self.driver.get(Path(page).resolve().as_uri() + query)

    def console_errors(self) -> list[str]:
        """The SEVERE console entries since the last call (page errors, failed loads, CSP refusals)."""
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def requests(self) -> list[str]:
        """Every URL the browser asked for since the last call (the pages, their scripts, styles and
        images, and anything they tried to fetch), from the DevTools network events."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(str(message["params"]["request"]["url"]))
        return urls

    def screenshot(self, path: Path, width: int = 1280) -> None:
        """The whole page, as tall as it is, to a PNG."""
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(width, min(max(height, 600), 16000))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 900)

    def quit(self) -> None:
        self.driver.quit()


def start() -> Browser:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(_find(CHROMIUM))
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=str(_find(CHROMEDRIVER)))
    return Browser(webdriver.Chrome(options=options, service=service))
