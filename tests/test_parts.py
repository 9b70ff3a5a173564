"""The typed row parts and the published schema describe the same documents."""
from __future__ import annotations

import typing

import pytest

from suite import parts
from suite.report.rows import schema


def _keys(td: type) -> tuple[set[str], set[str]]:
    return set(typing.get_type_hints(td)), set(td.__required_keys__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(parts.SCHEMA_DEFS))
def test_each_part_has_the_keys_and_required_keys_of_its_schema_entry(name: str) -> None:
    d = schema()["$defs"][name]
    keys, required = _keys(parts.SCHEMA_DEFS[name])
    declared = set(d.get("properties", {}))
    if d.get("additionalProperties") is False:
        assert keys == declared, f"{name}: typed {sorted(keys - declared)}, schema {sorted(declared - keys)}"
    else:   # an open object: the type may name more keys than the schema does
        assert declared <= keys, f"{name}: the schema has {sorted(declared - keys)} the type lacks"
    assert required == set(d.get("required", [])), f"{name}: required keys differ"


def test_the_row_document_has_every_top_level_field_of_the_schema() -> None:
    s = schema()
    keys, required = _keys(parts.RowDoc)
    assert keys == set(s["properties"])
    assert required == set(s["required"])   # the others were added later: older rows lack them


def test_the_fingerprint_type_names_the_fields_it_is_read_from() -> None:
    from suite.report.fingerprint import DATA_FIELDS, FIELDS, Fingerprint
    assert list(Fingerprint.__annotations__) == [*FIELDS, *DATA_FIELDS]   # the order the history stores
