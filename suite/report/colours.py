"""One colour per variant, the same in every chart and page, on every machine and in every run.

The baseline ``ln`` is black. Every other variant's colour follows from its name alone: a salted
hash picks one of the 19 other colours of matplotlib's ``tab20`` palette (strong half first), so a
chart of last night and one of a year ago agree, and a plugin's variant gets its colour without
registering one. The salt is chosen so that the norms the suite ships all differ
(``tests/test_site.py`` checks the registered ones); combinations (``ln+sla``, ``rms@peri``) and
plugins may share a colour with another variant, and their names tell them apart.
"""
from __future__ import annotations

import hashlib

from matplotlib import colormaps
from matplotlib.colors import to_hex

BASELINE = "ln"
BASELINE_COLOUR = "#000000"
_TAB20 = colormaps["tab20"].colors  # type: ignore[attr-defined]
#: the palette's colours, the strong half first; the last (a light grey) is left out
PALETTE = tuple(to_hex(c) for c in (_TAB20[0::2] + _TAB20[1::2]))[:19]
SALT = "12"


def variant_colour(variant: str) -> str:
    """The hex colour of ``variant``."""
    if variant == BASELINE:
        return BASELINE_COLOUR
    digest = hashlib.sha256(f"{SALT}:{variant}".encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]
