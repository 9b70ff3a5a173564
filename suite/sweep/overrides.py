"""``--set VARIANT.KEY=VALUE``: a norm keyword of one variant, checked and typed against the norm.

The norm contract is ``Cls(dim, *, keywords)``: its keyword-only parameters are what ``--set``
may change, each converted to the type of its default (else of its annotation). A value ``N%``
of an integer keyword is a share of the cell's optimizer steps, resolved per cell
(``suite.sweep.identity.variant_kwargs``).
"""
from __future__ import annotations

import inspect
import json
from typing import Any

from suite.errors import UsageError


def parse_overrides(items: list[str]) -> dict[str, dict[str, object]]:
    """``["prepbn.total_steps=500"]`` -> ``{"prepbn": {"total_steps": 500}}``: checked against the norm's
    keywords and converted to each keyword's type (that of its default, else its annotation)."""
    from suite.variants import NORMS, parse_variant
    out: dict[str, dict[str, object]] = {}
    for item in items:
        target, eq, value = item.partition("=")
        variant, dot, key = target.rpartition(".")
        if not (eq and dot and variant and key):
            raise UsageError(f"malformed --set {item!r}: use VARIANT.KEY=VALUE, e.g. --set prepbn.total_steps=500")
        norm = parse_variant(variant).norm
        # the norm contract is Cls(dim, *, keywords): its keyword-only parameters are what --set may change
        params = {k: v for k, v in inspect.signature(NORMS.get(norm).__init__).parameters.items()
                  if v.kind is v.KEYWORD_ONLY}
        if key not in params:
            raise UsageError(f"--set {item!r}: {norm} has no keyword {key!r} (known: {', '.join(params) or 'none'})")
        out.setdefault(variant, {})[key] = typed_value(item, params[key], value)
    return out


def typed_value(item: str, param: inspect.Parameter, text: str) -> Any:
    """``text`` as the type of the keyword: bool, int, float, str or tuple (``none`` where it may be None)."""
    kind = _kind(param)
    annotation = str(param.annotation)
    if text.strip().lower() in ("none", "null") and (param.default is None or "None" in annotation):
        return None
    try:
        return _convert(kind, text.strip())
    except ValueError:
        example = {"bool": "true or false", "int": "an integer (or N% of the run's steps)", "float": "a number",
                   "tuple": "a list like 1,2"}
        raise UsageError(f"--set {item!r}: {param.name} takes {example.get(kind, 'a value')} "
                         f"(its default is {param.default!r})") from None


def _kind(param: inspect.Parameter) -> str:
    default = param.default
    if isinstance(default, bool):
        return "bool"
    for name, typ in (("int", int), ("float", float), ("str", str)):
        if type(default) is typ:
            return name
    if isinstance(default, (tuple, list)):
        return "tuple"
    annotation = str(param.annotation)
    for name in ("bool", "int", "float", "tuple", "str"):
        if name in annotation:
            return name
    return "json"


def _convert(kind: str, text: str) -> Any:
    if kind == "bool":
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() not in words:
            raise ValueError(text)
        return words[text.lower()]
    if kind == "int" and text.endswith("%"):  # a fraction of the cell's optimizer steps, resolved per cell
        share = float(text[:-1])
        if not 0 < share <= 1000:
            raise ValueError(text)
        return f"{share:g}%"
    if kind == "int":
        value = float(text)
        if not value.is_integer():
            raise ValueError(text)
        return int(value)
    if kind == "float":
        return float(text)
    if kind == "str":
        return text
    if kind == "tuple":
        parsed = json.loads(text) if text.startswith("[") else [t.strip() for t in text.split(",")]
        return tuple(_number(v) for v in parsed)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value
