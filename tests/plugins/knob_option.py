"""A test-only option, declared in one place: a plugin's section with one result-defining field."""
from __future__ import annotations

from suite.declare import Section, option
from suite.sweep.options import OPTIONS


@OPTIONS.register("knobs")
class Knobs(Section):
    """Test-only options."""
    name, title = "knobs", "test-only options"
    knob: int = option(default=1, positive=True, result="value", help="a test-only knob that defines a cell's result")
