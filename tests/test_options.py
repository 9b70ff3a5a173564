"""Options declared once (``suite.declare``): one declaration reaches the parser, the checks,
``run.json``, the ``--resume`` check and, for a result-defining option, the cells' ``config_id``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.cli.run import parser, run_config
from suite.declare import declared
from suite.errors import UsageError
from suite.sweep.config import RunConfig
from suite.sweep.identity import cell_plan, config_id
from suite.sweep.options import SECTIONS

from conftest import plugins_loaded, run_main

ARGS = ["--tasks", "wikitext", "--variants", "ln,none", "--device", "cpu", "--max-steps", "5"]


def _config(tmp_path: Path, *extra: str) -> RunConfig:
    return run_config(parser().parse_args([*ARGS, "--out", str(tmp_path / "run"), *extra]))


def test_a_declared_option_reaches_help_run_json_resume_and_config_id(tmp_path: Path) -> None:
    before = config_id(cell_plan(_config(tmp_path).cell("wikitext", "none", 0)), "eager", "fp32")
    with plugins_loaded("knob_option"):
        r = run_main("--help", plugins=("knob_option",))
        help_text = " ".join(r.stdout.split())
        assert "--knob KNOB a test-only knob that defines a cell's result (default 1)" in help_text
        with pytest.raises(UsageError, match="--knob must be a positive integer, got 0"):
            _config(tmp_path, "--knob", "0")
        default, turned = _config(tmp_path), _config(tmp_path, "--knob", "3")
        # run.json holds it, and reads back
        assert turned.as_json()["knobs"] == {"knob": 3}
        assert RunConfig.from_json(json.loads(json.dumps(turned.as_json()))) == turned
        # left at its default, a cell keeps the id it had before the option existed; set, the id changes
        ids = {cfg.plugins["knobs"].knob: config_id(cell_plan(cfg.cell("wikitext", "none", 0)), "eager", "fp32")
               for cfg in (default, turned)}
        assert ids[1] == before and ids[3] != before
        assert cell_plan(turned.cell("wikitext", "none", 0))["options"] == {"knobs.knob": 3}
        # a resumed run refuses to change it, and takes the stored value when it is left out
        run = tmp_path / "run"
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"run_id": "r0", "config": turned.as_json()}))
        r = run_main("--resume", "--out", str(run), "--knob", "4", plugins=("knob_option",))
        assert r.returncode == 2 and "--knob would change it (3 -> 4); drop --knob" in r.stderr, r.stderr
        from suite.cli.run import resumed_config
        assert resumed_config(parser().parse_args(["--resume", "--out", str(run)])).plugins["knobs"].knob == 3
    assert "--knob" not in run_main("--help").stdout


def test_every_flag_is_one_name_from_flag_to_field() -> None:
    """The parser's flags are the declared fields' names (dashes for underscores), each declared once."""
    flags = [d.flag for cls in SECTIONS for d in declared(cls)]
    assert len(flags) == len(set(flags))
    for cls in SECTIONS:
        for d in declared(cls):
            assert d.flag == "--" + d.name.replace("_", "-")
            assert d.opt.help and d.opt.result in (None, "effect", "value")
    text = parser().format_help()
    assert all(f in text for f in flags)


def test_an_old_flat_run_json_reads_into_the_sections() -> None:
    """A run.json written before the declarations (flat keys, other names) keeps its meaning."""
    old = json.loads((Path(__file__).parent / "fixtures" / "compat-ad23643" / "interrupted" / "run.json")
                     .read_text())["config"]
    cfg = RunConfig.from_json(old)
    assert cfg.grid.tasks == ["wikitext"] and cfg.grid.variants == ["ln", "none"] and cfg.training.max_steps == 6
    assert cfg.measurement.timing_seconds == 0.4 and cfg.measurement.throughput_batch == 2
    assert cfg.measurement.runtime == ["eager"] and cfg.launch.jobs == 2 and not cfg.launch.inline
    assert cfg.launch.cell_timeout is None and cfg.grid.set == {}
    assert RunConfig.from_json(cfg.as_json()) == cfg


def test_a_cell_gets_the_parsed_sections_whole(tmp_path: Path) -> None:
    """The cell's spec carries the grid, training and measurement sections as parsed, and reads back equal."""
    from suite.sweep.config import CellSpec
    cfg = _config(tmp_path, "--set", "none.eps=0.001", "--threads", "1")
    spec = cfg.cell("wikitext", "none", 0)
    assert spec.training is cfg.training and spec.grid.set == {"none": {"eps": 0.001}}
    assert CellSpec.from_json(json.loads(json.dumps(spec.as_json()))) == spec
    assert spec.variant_kwargs == {"eps": 0.001} and cfg.cell("wikitext", "ln", 0).variant_kwargs == {}


def test_every_old_key_of_a_flat_run_json_keeps_its_meaning() -> None:
    """The keys ad23643's flat run.json used under other names (``variant_kwargs``, ``launch``,
    ``cell_timeout_s``, ``timing_s_per_model``, ``runtimes``, ``precisions``) and the shard."""
    old = {"tasks": ["imagenet"], "variants": ["ln", "prepbn"], "seeds": [0, 1], "out": "/x", "profile": "smoke",
           "device": "cpu", "data_root": "/data", "resume": False, "max_steps": 9, "timing_s_per_model": 1.5,
           "threads": 2, "cell_timeout_s": 600.0, "variant_kwargs": {"prepbn": {"total_steps": "50%"}},
           "batch_size": 8, "throughput_batch": 4, "nproc_per_node": 1, "sync_bn": False,
           "shard": {"index": 2, "count": 3}, "launch": "inline", "runtimes": ["eager", "compile"],
           "precisions": ["fp32", "bf16"], "amp": None, "jobs": 1}
    cfg = RunConfig.from_json(old)
    assert cfg.grid.set == {"prepbn": {"total_steps": "50%"}} and str(cfg.grid.shard) == "2/3"
    assert cfg.grid.data_root == Path("/data") and cfg.output.out == Path("/x")
    assert cfg.launch.inline and cfg.launch.cell_timeout == 600.0 and cfg.launch.threads == 2
    assert cfg.measurement.runtime == ["eager", "compile"] and cfg.measurement.precision == ["fp32", "bf16"]
    assert cfg.measurement.timing_seconds == 1.5 and cfg.training.batch_size == 8
    assert cfg.measurements == [("eager", "fp32"), ("eager", "bf16"), ("compile", "fp32"), ("compile", "bf16")]
    assert RunConfig.from_json(json.loads(json.dumps(cfg.as_json()))) == cfg
