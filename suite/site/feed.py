"""``feed.xml``: an Atom feed (RFC 4287) of the regressions the nightly called, newest first.

Built with the standard library's ElementTree, which escapes every text and attribute, so a
cell name or message from a row can never become markup in a feed reader.
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from suite.env import now_iso
from suite.report.plots import slug
from suite.site.history import Call

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 200


def write_feed(path: Path, calls: Sequence[Call], sources: Sequence[str]) -> Path:
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "title", "normbench: regressions called by the nightly")
    _text(feed, "id", "urn:normbench:regressions:" + hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16])
    newest = max((c.recorded_at for c in calls if c.recorded_at), default=None)
    _text(feed, "updated", newest or now_iso())
    ET.SubElement(feed, f"{{{ATOM}}}link", href="history.html?view=regressions")
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", "normbench publish")
    for c in calls[:MAX_ENTRIES]:
        v = c.verdict
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "title", f"{v.cell}: {v.metric} regressed {v.change}")
        ident = hashlib.sha256(f"{c.night}\n{v.key}\n{v.metric}".encode()).hexdigest()[:24]
        _text(entry, "id", f"urn:normbench:regression:{ident}")
        _text(entry, "updated", c.recorded_at or newest or now_iso())
        ET.SubElement(entry, f"{{{ATOM}}}link", href=f"history.html#cell-{slug(v.key)}")
        _text(entry, "summary", f"night {c.night}, commit {(c.commit or 'unrecorded')[:12]}: {v.metric} "
                                f"{v.baseline} -> {v.new} ({v.change}; a change beyond {v.needed} is called; "
                                f"{v.method})")
    tree = ET.ElementTree(feed)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}")
    el.text = text
    return el
