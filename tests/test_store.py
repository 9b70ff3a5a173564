from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.errors import UsageError
from suite.report.rows import SCHEMA_VERSION
from suite.report.store import Store, read_rows

V = {"schema_version": SCHEMA_VERSION}


def test_append_and_read(tmp_path: Path) -> None:
    s = Store(tmp_path, schema=False)  # the store mechanics, on minimal rows
    s.append(V | {"key": "a", "status": "ok", "x": float("nan")})
    s.append(V | {"key": "b", "status": "error"})
    rows = s.rows()
    assert [r["key"] for r in rows] == ["a", "b"] and rows[0]["x"] is None  # strict JSON, NaN -> null
    assert s.done_keys() == {"a"}  # error cells are retried by --resume


def test_a_torn_last_line_is_skipped_and_the_next_row_starts_fresh(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    s = Store(tmp_path, schema=False)  # the store mechanics, on minimal rows
    s.append(V | {"key": "a", "status": "ok"})
    with open(s.path, "a") as f:
        f.write('{"key": "b", "sta')  # a writer killed mid-line
    s.append(V | {"key": "c", "status": "ok"})
    assert [r["key"] for r in read_rows(s.path)] == ["a", "c"]
    assert "not a whole row" in capsys.readouterr().err
    lines = s.path.read_text().splitlines()
    assert json.loads(lines[-1])["key"] == "c"


def test_one_sweep_per_folder(tmp_path: Path) -> None:
    s = Store(tmp_path, schema=False)  # the store mechanics, on minimal rows
    with s.lock(), pytest.raises(UsageError, match="in use by another run"), Store(tmp_path).lock():
        pass
