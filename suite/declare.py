"""Options declared once: a field of a small frozen dataclass (a ``Section``) says everything about it.

``option(default, help=..., ...)`` declares one field: its flag (``--`` and the field's name with
dashes), help text, type (the annotation: ``bool`` is a switch, ``int``/``float``/``Path``/``str``
are converted by argparse, anything else by the field's ``parse``), choices, whether a given value
must be positive, and what it means to a run:

- ``meaning``: a resumed run (``--resume``) refuses to change it;
- ``result``: it defines a cell's result. ``"effect"``: the cell's plan already records what it
  changes (the profile as run, the data identity, the variant's keywords, ...); ``"value"``: the
  plan records the value itself, whenever it is not the default (so the ``config_id`` of every cell
  that leaves it alone stays what it was before the option existed);
- ``legacy``: the key a ``run.json`` written before the declarations used for it.

From those declarations come the parser (``add_arguments``, ``given``), the sections' construction
and checks (``build``; ``Section.__post_init__``), their JSON round trip (``as_json`` /
``from_json``), the ``--resume`` comparison (``first_difference``) and the identity's extra values
(``result_values``). Nothing else lists the options.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, ClassVar

from suite.errors import UsageError
from suite.parts import JsonObject

RESULT = (None, "effect", "value")


@dataclass(frozen=True)
class Opt:
    """What one declared field is, beyond its name, type and default (see the module's docstring)."""
    help: str
    parse: Callable[[Any], Any] | None = None        # argparse's value (a text, or a list with ``append``) -> field
    choices: tuple[Any, ...] | None = None
    positive: bool = False                           # when given: an integer >= 1, or seconds > 0
    metavar: str | None = None
    append: bool = False                             # repeatable flag; ``parse`` gets the list of texts
    meaning: bool = True
    result: str | None = None
    legacy: str | None = None
    legacy_read: Callable[[Any], Any] | None = None  # an old run.json's value -> this field's
    show: Callable[[Any], str] | None = None         # the value as its flag takes it (messages)

    def __post_init__(self) -> None:
        if self.result not in RESULT:
            raise ValueError(f"result must be one of {RESULT}, got {self.result!r}")


def parse_list(text: str, flag: str) -> list[str]:
    """A comma list with no empty or repeated item (``flag`` names the option in the message)."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UsageError(f"malformed {flag} {text!r}: give a comma-separated list with no empty items, "
                         f"e.g. {flag} ln,none")
    dup = next((t for t in items if items.count(t) > 1), None)
    if dup:
        raise UsageError(f"{flag} lists {dup!r} twice; give each once")
    return items


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    items = parse_list(text, flag)
    if not all(t.isdigit() for t in items):
        raise UsageError(f"{flag} {text!r} is not a comma-separated list of non-negative integers; e.g. {flag} 0,1,2")
    return [int(t) for t in items]


def option(*, default: Any = MISSING, help: str, default_factory: Any = MISSING, **declared: Any) -> Any:
    """A declared field of a ``Section`` (``declared``: the ``Opt`` attributes)."""
    meta = {"option": Opt(help=help, **declared)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Declared:
    """One declared field of one section, as the generated code sees it."""
    section: type[Section]
    name: str
    opt: Opt
    hint: Any                   # the field's annotation, resolved
    kind: type | None           # bool, int, float, str or Path; None: converted by ``opt.parse``

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return f"{self.section.name}.{self.name}"

    def field(self) -> dataclasses.Field[Any]:
        return _fields(self.section)[self.name]

    def default(self) -> Any:
        f = self.field()
        return f.default_factory() if f.default_factory is not MISSING else f.default

    def show(self, value: Any) -> str:
        if self.opt.show is not None and value is not None:
            return self.opt.show(value)
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return "none" if value is None else str(value)


@typing.dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(option, dataclasses.field))
class Section:
    """A few declared options of one axis (grid, training, ...): a frozen, keyword-only dataclass
    (every subclass is made one), checked when made."""
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True, kw_only=True)(cls)

    def __post_init__(self) -> None:
        for d in declared(type(self)):
            check(d, getattr(self, d.name))

    def as_json(self) -> JsonObject:
        return {d.name: to_json(getattr(self, d.name)) for d in declared(type(self))}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Section:
        """The section ``as_json`` wrote; fields it lacks take their defaults, unknown keys are ignored."""
        values = {d.name: from_json_value(d, data[d.name]) for d in declared(cls) if d.name in data}
        return cls(**values)

    @classmethod
    def from_legacy(cls, flat: Mapping[str, object]) -> Section:
        """The section from a flat configuration written before the declarations (``Opt.legacy``)."""
        values = {}
        for d in declared(cls):
            key = d.opt.legacy or d.name
            if key in flat:
                raw = flat[key]
                values[d.name] = from_json_value(d, d.opt.legacy_read(raw) if d.opt.legacy_read else raw)
        return cls(**values)


_DECLARED: dict[type, list[Declared]] = {}


def declared(cls: type[Section]) -> list[Declared]:
    """The declared fields of a section class, in their order."""
    if cls not in _DECLARED:
        hints = typing.get_type_hints(cls)
        out = []
        for f in _fields(cls).values():
            opt = f.metadata.get("option")
            if opt is None:
                continue
            out.append(Declared(cls, f.name, opt, hints[f.name], _kind(hints[f.name])))
        _DECLARED[cls] = out
    return _DECLARED[cls]


def _fields(cls: type[Section]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(typing.cast(Any, cls))}


def _kind(hint: Any) -> type | None:
    """The plain type argparse converts to (``X | None`` counts as ``X``), or None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    return hint if hint in (bool, int, float, str, Path) else None


def check(d: Declared, value: Any) -> None:
    """The declared checks of one value (the converters already checked its form)."""
    if value is None:
        return
    if d.opt.choices is not None and value not in d.opt.choices:
        raise UsageError(f"{d.flag} must be one of {', '.join(map(str, d.opt.choices))}, got {value!r}")
    if d.opt.positive and d.kind is int:
        check_positive([(d.flag, value)])
    if d.opt.positive and d.kind is float:
        check_seconds([(d.flag, value)])


def check_positive(pairs: list[tuple[str, Any]]) -> None:
    """Each (flag, value) with a value given must be an integer >= 1."""
    for flag, value in pairs:
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")


def check_seconds(pairs: list[tuple[str, Any]]) -> None:
    """Each (flag, seconds) with a value given must be a finite number > 0."""
    for flag, value in pairs:
        if value is not None and not (0 < value < math.inf):
            raise UsageError(f"{flag} must be a positive number of seconds, got {value}")


def add_arguments(p: argparse.ArgumentParser, sections: list[type[Section]]) -> None:
    """One argument per declared field with a flag, grouped by section; nothing given leaves no
    attribute (so ``given`` tells what the command line said from what it left alone)."""
    for cls in sections:
        group = p.add_argument_group(cls.title or cls.name)
        for d in declared(cls):
            # argparse's keywords, each of its own type
            kw: dict[str, Any] = {"dest": d.dest, "default": argparse.SUPPRESS, "help": _help(d)}
            if d.kind is bool:   # a flag; one on by default also gets its --no- form
                kw["action"] = argparse.BooleanOptionalAction if d.field().default is True else "store_true"
            else:
                kw["action"] = "append" if d.opt.append else "store"
                if d.opt.parse is None and d.kind is not None:
                    kw["type"] = d.kind
                if d.opt.choices is not None:
                    kw["choices"] = list(d.opt.choices)
                kw["metavar"] = d.opt.metavar or d.name.upper()
            group.add_argument(d.flag, **kw)


def _help(d: Declared) -> str:
    plain = d.field().default  # a default made at run time is not shown
    if "default" in d.opt.help or d.kind is bool or plain is None or plain is MISSING:
        return d.opt.help
    return f"{d.opt.help} (default {d.show(plain)})"


def given(args: argparse.Namespace, cls: type[Section]) -> dict[str, object]:
    """The values of ``cls``'s fields that the command line gave, converted by their ``parse``."""
    out = {}
    for d in declared(cls):
        if d.dest in vars(args):
            raw = getattr(args, d.dest)
            out[d.name] = d.opt.parse(raw) if d.opt.parse is not None else raw
    return out


def build(cls: type[Section], values: Mapping[str, object], base: Section | None = None) -> Section:
    """A section from given values, the others from ``base`` (a stored section) or the defaults."""
    return dataclasses.replace(typing.cast(Any, base), **values) if base is not None else cls(**values)


def first_difference(stored: Section, asked: Section) -> tuple[Declared, Any, Any] | None:
    """The first meaning-bearing field whose value differs between two sections of one class."""
    for d in declared(type(stored)):
        a, b = to_json(getattr(stored, d.name)), to_json(getattr(asked, d.name))
        if d.opt.meaning and a != b:
            return d, getattr(stored, d.name), getattr(asked, d.name)
    return None


def result_values(section: Section) -> Iterator[tuple[str, Any]]:
    """``(section.field, value)`` of every ``result="value"`` field that is not at its default."""
    for d in declared(type(section)):
        value = getattr(section, d.name)
        if d.opt.result == "value" and to_json(value) != to_json(d.default()):
            yield d.dest, to_json(value)


def to_json(value: Any) -> Any:
    """A field's value as plain JSON (paths as text, dataclasses as objects, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_json(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json_value(d: Declared, raw: Any) -> Any:
    """A field's value from its JSON form (the inverse of ``to_json`` for the declared type)."""
    if raw is None:
        return None
    if d.kind is Path:
        return Path(raw)
    target = next((a for a in typing.get_args(d.hint) if dataclasses.is_dataclass(a)), d.hint)
    if dataclasses.is_dataclass(target) and isinstance(raw, dict):
        return target(**raw)  # type: ignore[operator]
    return raw
