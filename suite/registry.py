"""Named registries for plugins (norms, attention, placements, tasks).

One registry per kind of plugin. Entries come from three places, discovered lazily on the
first lookup: the modules of an in-tree package (one file per entry, each registering itself
with the decorator), the entry-point group of the kind (out-of-tree packages), and the
modules named in ``NORMBENCH_PLUGINS`` (comma-separated importable modules; handy for
experiments and tests without packaging).
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import os
import pkgutil
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from suite.errors import UsageError

PLUGINS_ENV = "NORMBENCH_PLUGINS"


class Registry:
    """Maps names to plugin objects (classes). Duplicate names are errors."""

    def __init__(self, kind: str, package: str | None, entry_point_group: str) -> None:
        self.kind = kind
        self.package = package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Any] = {}
        self._discovered = False
        self._discovering = False
        # a sweep works on several groups in threads: another thread waits for a discovery under way
        # (re-entrant: the plugins a discovery imports may look names up in this registry themselves)
        self._discovery = threading.RLock()
        REGISTRIES.append(self)

    # -- registration -----------------------------------------------------------------
    def register(self, name: str, obj: Any = None) -> Callable[[Any], Any] | Any:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""
        if not name or any(c in name for c in "+,@ ") or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}: no spaces, commas, '+' or '@' (they compose "
                             f"variant names: norm[+attention][@placement])")

        def add(o: Any) -> Any:
            if name in self._entries and self._entries[name] is not o:
                raise ValueError(f"duplicate {self.kind} name {name!r}: already registered "
                                 f"by {_origin(self._entries[name])}, again by {_origin(o)}")
            self._entries[name] = o
            with contextlib.suppress(AttributeError, TypeError):  # e.g. a function or a slotted object
                o.registered_name = name
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin loaded for a while, e.g. by a test, then put away)."""
        self._entries.pop(name, None)

    # -- lookup -------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        self.discover()
        if name not in self._entries:
            raise UsageError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return (f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: "
                f"{', '.join(known) or '(none)'}; run with --list for descriptions.")

    def entries(self) -> dict[str, Any]:
        """Every registered name and object (a copy), after discovery."""
        self.discover()
        return dict(self._entries)

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, Any]]:
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries

    # -- discovery ----------------------------------------------------------------------
    def discover(self) -> None:
        if self._discovered:
            return
        with self._discovery:
            self._discover()

    def _discover(self) -> None:
        if self._discovered or self._discovering:   # done by another thread meanwhile, or re-entered
            return
        self._discovering = True
        try:
            if self.package:
                pkg = importlib.import_module(self.package)
                for info in pkgutil.iter_modules(pkg.__path__):
                    if not info.name.startswith("_"):
                        self._load(f"{self.package}.{info.name}", "the file")
            for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                try:
                    loaded = ep.load()
                    if not isinstance(loaded, types.ModuleType):  # a class/object: register it under ep.name
                        self.register(ep.name, loaded)
                except Exception as e:  # noqa: BLE001 - one line that names the plugin, no traceback
                    raise UsageError(f"the {self.kind} plugin {ep.name!r} (entry point {ep.value} of group "
                                     f"{self.entry_point_group}) failed to load: {_line(e)}; fix the package or "
                                     f"uninstall it") from None
            for mod in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
                self._load(mod, f"{PLUGINS_ENV}")
            self._discovered = True
        finally:
            self._discovering = False

    def _load(self, module: str, where: str) -> None:
        try:
            importlib.import_module(module)
        except UsageError:
            raise
        except Exception as e:  # noqa: BLE001 - one line that names the module, no traceback
            fix = f"fix the name in {PLUGINS_ENV} or unset it" if where == PLUGINS_ENV else "fix or remove the file"
            raise UsageError(f"{self.kind} plugin module {module!r} (from {where}) failed to load: {_line(e)}; "
                             f"{fix}") from None


#: every registry made (one per kind of plugin), in the order they were created
REGISTRIES: list[Registry] = []


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()[:300]


def describe(obj: Any) -> str:
    """First line of an entry's docstring: its one-line description."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else "(no description)"


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
