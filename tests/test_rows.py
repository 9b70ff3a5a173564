"""The published row schema: migration of old versions, refusal of unreadable rows, validation, accessors."""
from __future__ import annotations

import copy
import json

import pytest

from suite.errors import UsageError
from suite.report.rows import SCHEMA_PATH, SCHEMA_VERSION, Row, migrate, schema, validate
from suite.report.store import read_rows

from conftest import ROOT
from synth import make_row

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the GPU image lacks it)")


def full_row(**over):
    return make_row("un", log_ratios=[0.01] * 20) | over


def test_the_schema_is_a_valid_json_schema_and_the_synthetic_row_follows_it() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert json.loads(SCHEMA_PATH.read_text())["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    validate(full_row())


@pytest.mark.parametrize("mutate, where", [
    (lambda r: r.pop("launcher"), "launcher"),
    (lambda r: r.update(status="fine"), "status"),
    (lambda r: r["latency"].update(timer="stopwatch"), "timer"),
    (lambda r: r.update(extra_field=1), "extra_field"),
    (lambda r: r.update(memory={"error": "boom"}), "memory"),  # an ok row has a measured memory
    (lambda r: r["dataset"].update(kind="downloaded"), "kind"),
])
def test_the_schema_rejects_malformed_rows(mutate, where: str) -> None:
    row = copy.deepcopy(full_row())
    mutate(row)
    with pytest.raises(jsonschema.ValidationError) as e:
        validate(row)
    assert where in str(e.value)


def test_committed_reference_rows_migrate_to_the_current_schema() -> None:
    files = sorted((ROOT / "results" / "reference").glob("*/rows.jsonl"))
    assert files
    for f in files:
        for row in read_rows(f):
            assert row["schema_version"] == SCHEMA_VERSION
            if row["task"].startswith("deploy-bench:"):  # timing-only rows (no training, no quality): not a cell
                assert row["latency"] and row["runtime"] and row["precision"]
                continue
            assert row["launcher"] in ("subprocess", "torchrun")
            validate(row)


def test_a_newer_or_foreign_row_is_refused_with_one_line(tmp_path) -> None:
    with pytest.raises(UsageError, match="newer than this suite"):
        migrate({"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(UsageError, match="not a normbench results row"):
        migrate({"key": "x"})
    bad = tmp_path / "rows.jsonl"
    bad.write_text(json.dumps({"schema_version": 99, "key": "k"}) + "\n")
    with pytest.raises(UsageError) as e:
        list(read_rows(bad))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_row_accessors_read_what_the_reports_need() -> None:
    r = Row(full_row())
    assert r.ok and r.variant == "un" and r.seed == 0 and r.quality["top1"] == 97.0
    assert r.ratio_baseline == "ln" and len(r.log_ratios) == 20 and r.latency_p50 == 1.0
    assert r.throughput_unit == "img/s" and r.throughput_batch == 64 and r.peak_mb == 28.0
    assert r.params == 100_000 and r.deploy_rel_err == 0.0 and r.dataset_kind == "embedded" and r.commit == "c0ffee"
    empty = Row({"key": "a|b|0|p|cpu", "task": "a", "variant": "b", "seed": 0, "status": "error", "latency": None})
    assert empty.latency_p50 is None and empty.log_ratios == [] and empty.quality == {} and empty.peak_mb is None


def test_the_one_row_builder_writes_every_schema_field_and_no_other() -> None:
    """``build_row`` is where every row is made (sweep, deploy-bench, these tests): its fields are
    the schema's, all required; a minimal row (a cell that failed before anything was measured)
    follows the schema too."""
    from suite.report.rows import RowKey, build_row
    key = RowKey(task="imagenet", variant="ln", norm="ln", attention=None, seed=0, profile="smoke", device="cpu")
    row = build_row(key, run_id="r", status="error", message="DataError: no data", recorded_at="2026-01-01T00:00:00Z",
                    provenance=make_row("ln")["provenance"], dataset={"kind": "embedded", "path": None,
                                                                     "label": "embedded"})
    s = schema()
    assert set(row) == set(s["properties"]) >= set(s["required"])   # every field; absent ones are null
    validate(row)
    assert row["key"] == "imagenet|ln|0|smoke|cpu|eager|fp32"
    with pytest.raises(ValueError, match="status must be one of"):
        build_row(key, run_id="r", status="fine", provenance=row["provenance"], recorded_at="",  # type: ignore[arg-type]
                  dataset=row["dataset"])
