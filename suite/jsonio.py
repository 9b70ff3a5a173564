"""Small JSON helpers: atomic file writes, NaN-safe encoding, keyword arguments as checked JSON."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suite.errors import UsageError
from suite.parts import Json, JsonObject


def clean(obj: Any) -> Any:
    """Replace NaN/inf by None so every file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(clean(obj), allow_nan=False, **kw)


def write_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` so a reader sees the old file or the whole new one, never half."""
    write_text_atomic(path, dumps(obj, indent=1))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def json_kwargs(kwargs: Mapping[str, object]) -> JsonObject:
    """Keyword arguments (a variant's) as the JSON object a build description holds: each value
    checked to be JSON; a tuple becomes the list that ``deployed.json`` stores anyway."""
    return {k: _json_value(k, v) for k, v in kwargs.items()}


def _json_value(key: str, value: object) -> Json:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(key, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_value(key, v) for k, v in value.items()}
    raise UsageError(f"keyword {key}={value!r} has no JSON form: a build description stores numbers, text, "
                     f"lists and objects")
