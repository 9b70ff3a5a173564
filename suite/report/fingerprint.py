"""What must match for two rows to be compared: the hardware and software fingerprint.

Latency and memory only mean something against a row measured on the same kind of device
with the same libraries, and quality only against the same data. The suite's own git
commit is recorded next to the fingerprint but is deliberately left out of it: the commit
is what changes from night to night, and the verdicts exist to judge that change.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import NotRequired, TypedDict, cast

from suite.report.rows import Row

#: fingerprint field -> where it lives in a row (a path of dict keys)
FIELDS: dict[str, tuple[str, ...]] = {
    "device_type": ("provenance", "device", "type"),
    "device_name": ("provenance", "device", "name"),
    "driver": ("provenance", "device", "driver"),
    "cpu": ("provenance", "device", "cpu"),
    # the number of torch threads changes CPU latency as much as a different CPU does
    "torch_threads": ("provenance", "device", "torch_threads"),
    "torch": ("provenance", "libraries", "torch"),
    "timm": ("provenance", "libraries", "timm"),
    "transformers": ("provenance", "libraries", "transformers"),
    "schema_version": ("schema_version",),
    # a row is one runtime and precision; a runtime's own version changes its numbers like torch's does
    "runtime": ("runtime",),
    "precision": ("precision",),
    "onnxruntime": ("runtime_info", "onnxruntime"),
}
#: quality is only comparable on the same data; shards of one sweep differ here by task
DATA_FIELDS: dict[str, tuple[str, ...]] = {"dataset": ("dataset", "fingerprint"),
                                           # the cell's configuration: steps, batch, kwargs, versions, ...
                                           "config_id": ("config_id",)}


class Fingerprint(TypedDict):
    """The fields of ``FIELDS`` and ``DATA_FIELDS``, in their order (the history stores it as is). A value
    is whatever the row holds there, never interpreted: fingerprints are only compared, shown and hashed."""
    device_type: object
    device_name: object
    driver: object
    cpu: object
    torch_threads: object
    torch: object
    timm: object
    transformers: object
    schema_version: object
    runtime: object
    precision: object
    onnxruntime: object
    dataset: NotRequired[object]      # absent with ``data=False``
    config_id: NotRequired[object]


def fingerprint(row: Mapping[str, object], data: bool = True) -> Fingerprint:
    """The comparability fingerprint of one row (missing fields are None); ``data=False``:
    the machine and software only."""
    fields = FIELDS | DATA_FIELDS if data else FIELDS
    view = Row(row)
    # built from the tables so that the key order (part of the history's lines) stays theirs
    return cast(Fingerprint, {name: view.at(path) for name, path in fields.items()})


def fingerprint_id(fp: Mapping[str, object]) -> str:
    """A short stable id of a fingerprint, for tables and grouping."""
    return hashlib.sha1(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:10]


def differences(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """Human-readable fields where two fingerprints differ, e.g. ``torch 2.14.1 vs 2.15.0``."""
    return [f"{k} {a.get(k)} vs {b.get(k)}" for k in FIELDS | DATA_FIELDS if a.get(k) != b.get(k)]


def commit(row: Mapping[str, object]) -> str | None:
    """The suite commit a row was produced by (recorded, never part of the fingerprint)."""
    return Row(row).commit
