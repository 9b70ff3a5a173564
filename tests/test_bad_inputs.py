"""The bad-input corpus: every option, each task's broken layouts, damaged results folders, broken plugins.

Each case must end with exit status 2, exactly one line on stderr that names the fix, no
traceback, and the bytes of an existing results store unchanged. Cases run in-process through
``suite.cli.main`` (fast); plugin failures, which happen at import, run in a fresh interpreter.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from suite.cli.main import main
from suite.report.rows import SCHEMA_VERSION
from suite.sweep.config import RunConfig
from suite.sweep.options import Grid, Output, Training

from conftest import ROOT, run_forked, write_coco, write_image_folders, write_wikitext
from synth import make_row


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A recorded run (``out``), another sweep's folder, a foreign store, an empty store, a corrupt run."""
    base = tmp_path_factory.mktemp("corpus")
    made = {}
    for name, variants in (("out", ["ln", "un"]), ("other", ["ln", "bn"])):
        d = base / name
        d.mkdir()
        cfg = RunConfig(grid=Grid(tasks=["imagenet"], variants=variants, seeds=[0], device="cpu"),
                        training=Training(max_steps=5), output=Output(out=d))
        (d / "run.json").write_text(json.dumps({"run_id": "r0", "config": cfg.as_json()}))
        (d / "rows.jsonl").write_text("".join(json.dumps(make_row(v)) + "\n" for v in variants))
        made[name] = d
    made["foreign"] = base / "foreign"
    made["foreign"].mkdir()
    (made["foreign"] / "rows.jsonl").write_text(json.dumps(make_row("ln") | {"schema_version": SCHEMA_VERSION + 7})
                                                + "\n")
    made["empty"] = base / "empty"
    made["empty"].mkdir()
    (made["empty"] / "rows.jsonl").write_text("")
    made["corrupt"] = base / "corrupt"
    made["corrupt"].mkdir()
    (made["corrupt"] / "run.json").write_text("{not json")
    made["tmp"] = base
    return made


def broken_layouts(root: Path) -> dict[str, Path]:
    """Each task's real layout, broken one way each."""
    cases = {}
    d = root / "imagenet-no-val"
    (d / "imagenet" / "train" / "n01").mkdir(parents=True)
    Path(d / "imagenet" / "train" / "n01" / "a.JPEG").write_bytes(b"")
    cases["imagenet-no-val"] = d
    d = write_image_folders(root / "imagenet-empty-class", ["n01", "n02"], 2, [(16, 16)])
    for f in (d / "imagenet" / "val" / "n02").iterdir():
        f.unlink()
    cases["imagenet-empty-class"] = d
    cases["imagenet-one-class"] = write_image_folders(root / "imagenet-one-class", ["n01"], 2, [(16, 16)])
    d = write_coco(root / "coco-bad-json")
    (d / "coco" / "annotations" / "instances_val2017.json").write_text("{oops")
    cases["coco-bad-json"] = d
    d = write_wikitext(root / "wiki-empty")
    (d / "wikitext" / "wiki.test.raw").write_text("")
    cases["wiki-empty"] = d
    return cases


CASES = [
    # --- the sweep's options -------------------------------------------------------------
    (["--variants", "ln,,"], "malformed --variants"),
    (["--variants", "ln,ln"], "twice"),
    (["--variants", "ln+"], "malformed variant"),
    (["--variants", "lnn"], "Did you mean 'ln'"),
    (["--tasks", "imagnet"], "Did you mean 'imagenet'"),
    (["--seeds", "x"], "--seeds 'x'"),
    (["--seeds", "0,-1"], "non-negative integers"),
    (["--profile", "nope"], "use --profile smoke"),
    (["--profile", "paper"], "pass --data-root"),
    (["--device", "tpu"], "invalid choice"),
    (["--max-steps", "0"], "--max-steps must be a positive integer"),
    (["--threads", "0"], "--threads must be a positive integer"),
    (["--batch-size", "-1"], "--batch-size must be a positive integer"),
    (["--throughput-batch", "0"], "--throughput-batch must be a positive integer"),
    (["--nproc-per-node", "0"], "--nproc-per-node must be a positive integer"),
    (["--timing-seconds", "-1"], "--timing-seconds must be a positive number of seconds"),
    (["--cell-timeout", "0"], "--cell-timeout must be a positive number of seconds"),
    (["--window", "0"], "--window must be a positive integer"),
    (["--shard", "3/2"], "1 <= I <= N"),
    (["--shard", "x"], "malformed --shard"),
    (["--variants", "un", "--set", "un.window_size=abc"], "window_size takes an integer"),
    (["--variants", "un", "--set", "un.outlier_filtration=maybe"], "takes true or false"),
    (["--variants", "un", "--set", "un.window=8"], "un has no keyword 'window' (known: eps, window_size"),
    (["--variants", "un", "--set", "un.window_size"], "use VARIANT.KEY=VALUE"),
    (["--variants", "ln", "--set", "un.window_size=8"], "not in --variants"),
    (["--runtime", "bogus"], "Known runtimes: compile, cudagraphs, eager, onnxruntime"),
    (["--precision", "fp8"], "known precisions: fp32, bf16, fp16"),
    (["--inline", "--nproc-per-node", "2"], "drop --inline"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["--variants", "ln,un", "--baseline", "rms"], "--baseline rms is not in --variants (ln,un)"),
    (["--jobs", "2", "--inline"], "with --inline or --nproc-per-node use --jobs 1"),
    (["--jobs", "2", "--nproc-per-node", "2"], "use --jobs 1 (make run: JOBS=1)"),
    (["--data-root", "{tmp}/nowhere"], "is not a folder"),
    (["--compare", "{tmp}/nowhere"], "does not exist"),
    (["--fail-on-regression"], "needs --compare"),
    (["--bogus"], "unrecognized arguments"),
    # --- results folders: recorded, damaged, foreign, of another sweep ---------------------
    (["--variants", "ln,un", "--tasks", "imagenet", "--out", "{out}"], "already holds a run; pass --resume"),
    (["--resume", "--out", "{tmp}/empty"], "holds no run.json"),
    (["--resume", "--out", "{out}", "--variants", "ln,none"], "--variants would change it (ln,un -> ln,none)"),
    (["--resume", "--out", "{out}", "--max-steps", "9"], "--max-steps would change it (5 -> 9)"),
    (["--resume", "--out", "{corrupt}"], "not a run configuration this suite can read"),
    (["compare", "{foreign}", "{out}"], "newer than this suite"),
    (["compare", "{out}", "{empty}"], "holds no rows"),
    (["merge", "{out}", "{other}", "--out", "{tmp}/merged"], "come from different sweeps (variants differ)"),
    (["merge", "{tmp}/nowhere"], "has no rows.jsonl"),
    # --- the other subcommands -------------------------------------------------------------
    (["deploy-bench", "--model", "resnet50"], "unsupported model 'resnet50'"),
    (["deploy-bench", "--seconds", "0"], "--seconds must be a positive number of seconds"),
    (["deploy-bench", "--runtime", "nope"], "unknown runtime 'nope'"),
    (["calibrate", "--seconds", "-5"], "--seconds must be a positive number of seconds"),
    (["scaling", "--tokens", "10,x"], "positive integers"),
    (["history", "--history", "{tmp}/nowhere"], "no history at"),
    (["history", "--nights", "0"], "--nights must be a positive integer"),
    (["gpu-check", "--budget", "0"], "--budget must be a positive number of seconds"),
    (["gpu-check", "--build-jobs", "0"], "--build-jobs must be a positive integer"),
    (["deploy-bench", "--batch", "-1"], "--batch must be 0 (batch-1 latency only) or a positive integer"),
]
LAYOUTS = [("imagenet", "imagenet-no-val", "val is missing"),
           ("imagenet", "imagenet-empty-class", "holds no image files"),
           ("imagenet", "imagenet-one-class", "single class folder"),
           ("coco", "coco-bad-json", "not readable COCO JSON"),
           ("wikitext", "wiki-empty", "is empty")]


def expect_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str, store: Path) -> None:
    before = store.read_bytes()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith("normbench: error: ") and needle in err, err
    assert store.read_bytes() == before  # nothing already recorded is touched


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(capsys: pytest.CaptureFixture[str], folders: dict[str, Path], argv: list[str],
                   needle: str) -> None:
    if "--device" in argv and "cuda" in argv and torch.cuda.is_available():
        pytest.skip("checks the message a machine without CUDA gives")
    argv = [a.format(**{k: str(v) for k, v in folders.items()}) for a in argv]
    expect_one_line(capsys, argv, needle, folders["out"] / "rows.jsonl")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the messages of a machine without CUDA")
@pytest.mark.parametrize("argv, needle", [(["--device", "cuda"], "use --device cpu"),
                                          (["--amp", "bf16"], "use --device cuda")])
def test_cuda_options_without_cuda(capsys: pytest.CaptureFixture[str], folders: dict[str, Path], argv: list[str],
                                   needle: str) -> None:
    expect_one_line(capsys, argv, needle, folders["out"] / "rows.jsonl")


@pytest.mark.parametrize("task, layout, needle", LAYOUTS, ids=[c[1] for c in LAYOUTS])
def test_broken_dataset_layout(capsys: pytest.CaptureFixture[str], folders: dict[str, Path],
                               tmp_path: Path, task: str, layout: str, needle: str) -> None:
    root = broken_layouts(tmp_path)[layout]
    expect_one_line(capsys, ["--tasks", task, "--variants", "ln", "--data-root", str(root),
                             "--out", str(tmp_path / "run")], needle, folders["out"] / "rows.jsonl")
    assert not (tmp_path / "run" / "rows.jsonl").exists()


PLUGINS = {
    "missing": ("NORMBENCH_PLUGINS", "no_such_plugin_module", "failed to load: ModuleNotFoundError"),
    "raises": ("raising_plugin", "raise RuntimeError('plugin bug')\n", "failed to load: RuntimeError: plugin bug"),
    "duplicate": ("duplicate_plugin", "from suite import register_norm\nimport torch.nn as nn\n"
                  "register_norm('ln')(nn.Identity)\n", "duplicate norm name 'ln'"),
}


@pytest.mark.parametrize("case", PLUGINS)
def test_broken_plugin(tmp_path: Path, folders: dict[str, Path], case: str) -> None:
    name, body, needle = PLUGINS[case]
    module = body if case == "missing" else name
    if case != "missing":
        (tmp_path / f"{name}.py").write_text(body)
    env = dict(os.environ) | {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "NORMBENCH_PLUGINS": module}
    before = (folders["out"] / "rows.jsonl").read_bytes()
    proc = run_forked("--list", env=env, folder=tmp_path / "cli", timeout=120)  # its own process and registries
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and "\n" not in err, err
    assert needle in err and ("fix" in err or "remove" in err), err
    assert (folders["out"] / "rows.jsonl").read_bytes() == before
