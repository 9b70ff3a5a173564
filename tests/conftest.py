"""Shared fixtures: CLI runner, fast sweep flags, tiny real-layout datasets, the gpu marker."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
#: budgets that keep an end-to-end sweep to seconds of work per cell
FAST = ["--max-steps", "6", "--timing-seconds", "0.4", "--throughput-batch", "2"]
#: every row any sweep of the tests writes (in this process or a child) is checked against the schema
#: (where jsonschema is installed: the GPU image lacks it, and its gpu tests must still collect and run)
if importlib.util.find_spec("jsonschema") is not None:
    os.environ["NORMBENCH_VALIDATE_ROWS"] = "1"
#: both devices for a test whose logic runs anywhere: the CUDA case is a `gpu` test
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test``: two workers), each worker gets its own share of the cores and
    one torch thread per core it has: PyTorch's OpenMP threads spin while they wait, so two workers
    each running threads on every core slow each other down many times over."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not (worker and count) or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    index, n = int(worker.removeprefix("gw")), int(count)
    share = max(1, len(cores) // n)
    mine = cores[(index * share) % len(cores):][:share] or cores[:share]
    os.sched_setaffinity(0, mine)  # inherited by every process this worker starts
    os.environ["OMP_NUM_THREADS"] = str(len(mine))
    torch.set_num_threads(len(mine))


#: the longest test files, longest first (2-core AMD EPYC, December 2026: 95 s down to 28 s), collected
#: ahead of the rest, which keep their order: each worker takes the next file as it frees, so the long
#: ones start early and the end of the run has only short files left to share out. ``test_slurm.py``
#: spends much of its time waiting on its cluster's jobs (on every core): it starts while the other
#: worker runs the rest. ``make test`` passes ``--no-loadscope-reorder``, or pytest-xdist would order
#: the files by their number of tests instead
FIRST = ("test_slurm.py", "test_integrity.py", "test_benchmarks_run.py", "test_paper_profile.py",
         "test_runtimes.py", "test_full_disk.py", "test_real_data_sweep.py", "test_launch.py", "test_sweep.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: a file's own order stays
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (no GPU here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def plugin_env(*modules: str) -> dict[str, str]:
    """Environment for a subprocess that also loads the test-only plugin modules."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), str(ROOT), env.get("PYTHONPATH", "")])
    env["NORMBENCH_PLUGINS"] = ",".join(modules)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``run_suite.py ARGS`` in a fresh interpreter: where the command's own process is the point (its
    exit status as a process, a kill, a lock held by another process, an installed package)."""
    return subprocess.run([sys.executable, str(ROOT / "run_suite.py"), *args], cwd=ROOT, env=env or plugin_env(),
                          capture_output=True, text=True, timeout=timeout)


class ForkedCli:
    """``run_suite.py ARGS`` as a process forked from this process's preloaded launcher server
    (``tests/cli_worker.py``): its own process and session, its own registries and state, the
    environment it is given; what a fresh interpreter would do, minus the seconds of importing
    torch, timm and transformers again. ``pid`` is also its process group."""

    def __init__(self, args: tuple[str, ...], env: dict[str, str], folder: Path, entry: str = "cli",
                 every_core: bool = False) -> None:
        import json

        from suite.launch import _forked_main, _server_context
        folder.mkdir(parents=True, exist_ok=True)
        self.args, self.out, self.err = args, folder / "stdout.txt", folder / "stderr.txt"
        spec = folder / "cli-spec.json"
        spec.write_text(json.dumps({"argv": list(args), "stdout": str(self.out), "stderr": str(self.err),
                                    "entry": entry, "every_core": every_core}))
        self.proc = _server_context().Process(target=_forked_main, args=("tests.cli_worker", str(spec), env))
        self.proc.start()
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.exitcode

    def wait(self, timeout: float = 600) -> subprocess.CompletedProcess:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            os.killpg(self.pid, 9)
            self.proc.join()
            raise TimeoutError(f"run_suite.py {' '.join(self.args)} ran past {timeout} s")
        return subprocess.CompletedProcess(["normbench", *self.args], self.proc.exitcode, self.out.read_text(),
                                           self.err.read_text())


def start_cli(*args: str, env: dict[str, str] | None = None, folder: Path, every_core: bool = False) -> ForkedCli:
    """Start ``run_suite.py ARGS`` in a forked process (``ForkedCli``); ``folder`` keeps its output.
    ``every_core``: the process and what it starts may run on every core, not only this worker's."""
    return ForkedCli(args, env or plugin_env(), folder, every_core=every_core)


def run_forked(*args: str, env: dict[str, str] | None = None, folder: Path,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """``run_suite.py ARGS`` in a forked process of its own (``ForkedCli``), waited for."""
    return start_cli(*args, env=env, folder=folder).wait(timeout)


def run_forked_pytest(*args: str, folder: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``pytest ARGS`` in a forked process of its own (from the repository root), waited for."""
    return ForkedCli(args, plugin_env(), folder, entry="pytest").wait(timeout)


_PLUGIN_ENTRIES: dict[str, list[tuple[Any, str, Any]]] = {}


@contextlib.contextmanager
def plugins_loaded(*modules: str) -> Iterator[None]:
    """The test-only plugin modules registered in this process for a while (their workers load them
    through ``NORMBENCH_PLUGINS``), and put away after, so no other test sees them."""
    import suite.measure.runtimes
    import suite.task
    import suite.variants  # noqa: F401 - every registry exists before the snapshot below
    from suite.registry import REGISTRIES
    if modules and str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))
    added = []
    for module in modules:
        if module not in _PLUGIN_ENTRIES:  # first use: import it and note what its decorators registered
            before = {id(r): r.entries() for r in REGISTRIES}
            sys.modules.pop(module, None)  # registered by an earlier import and put away since
            importlib.import_module(module)
            _PLUGIN_ENTRIES[module] = [(r, n, o) for r in REGISTRIES for n, o in r.entries().items()
                                       if n not in before.get(id(r), {})]
            added += _PLUGIN_ENTRIES[module]
        else:
            for registry, name, obj in _PLUGIN_ENTRIES[module]:
                if name not in registry:
                    registry.register(name, obj)
                    added.append((registry, name, obj))
    try:
        yield
    finally:
        for registry, name, _ in added:
            registry.unregister(name)


def run_main(*args: str, plugins: tuple[str, ...] = (), env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess:
    """The real command line (``suite.cli.main.main``) in this process: its workers are still
    processes of their own (forked from this process's preloaded server, which lives across tests),
    only the sweep's parent is this one, so no interpreter start and library import per call. The
    parent's stdout and stderr are captured; the environment, plugins and torch threads are as
    before afterwards."""
    import io

    import torch

    from suite.cli.main import main
    extra = dict(env or {})
    if plugins:
        extra["NORMBENCH_PLUGINS"] = ",".join(plugins)
        extra["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    saved = {k: os.environ.get(k) for k in extra}
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        with plugins_loaded(*plugins), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            os.environ.update(extra)
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 2
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["normbench", *args], code, out.getvalue(), err.getvalue())


def save_tiny_deployed(folder: Path, variant: str = "ln") -> Path:
    """A deployed model as the sweep saves it (weights + build description): a 2-block ViT-Tiny at 32 px."""
    from suite.bench.deploy_bench import build_args, build_deployed, input_spec
    from suite.models.artifact import save_deployed
    args = build_args("vit_tiny_patch16_224", variant, 32)
    args["kwargs"]["depth"] = 2
    folder.mkdir(parents=True, exist_ok=True)
    save_deployed(folder, build_deployed(args, input_spec("vit_tiny_patch16_224", 32, 0), "cpu"), args)
    return folder


#: the input spec of ``save_tiny_deployed``'s models
TINY_INPUT = {"kind": "image", "shape": [3, 32, 32]}


def write_image_folders(root: Path, classes: list[str], per_class: int, sizes: list[tuple[int, int]]) -> Path:
    """``root/imagenet/{train,val}/<class>/*.JPEG`` with class-dependent colours, varied sizes."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(1, per_class // 2))):
        for ci, cls in enumerate(classes):
            d = root / "imagenet" / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = sizes[(ci + i) % len(sizes)]
                base = np.zeros((h, w, 3), np.uint8)
                base[..., ci % 3] = 200
                img = np.clip(base + rng.integers(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{cls}_{i}.JPEG")
    return root


@pytest.fixture
def tiny_imagenet(tmp_path: Path) -> Path:
    return write_image_folders(tmp_path / "data", ["n01", "n02", "n03"], 6, [(40, 30), (24, 48), (33, 33)])


def write_coco(root: Path, cat_ids: tuple[int, ...] = (5, 17, 90)) -> Path:
    """``root/coco`` in the COCO 2017 layout: JPEG images of different sizes, non-contiguous
    category ids, a crowd annotation and an image with no annotation at all."""
    import json

    from PIL import Image, ImageDraw
    rng = np.random.default_rng(1)
    for split, n in (("train2017", 12), ("val2017", 6)):
        d = root / "coco" / split
        d.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for k in range(n):
            image_id = 1000 + 7 * k  # ids need not start at 1 or be contiguous either
            w, h = (64 + 16 * (k % 3), 48 + 24 * (k % 2))
            img = Image.fromarray(rng.integers(0, 60, (h, w, 3), dtype=np.uint8))
            draw = ImageDraw.Draw(img)
            for j in range(0 if k == 0 else 1 + k % 2):  # image 0 has no annotation
                cat = cat_ids[(k + j) % len(cat_ids)]
                s = 14 + 4 * j
                x, y = 4 + 20 * j, 6
                draw.rectangle([x, y, x + s - 1, y + s - 1], fill=(60 * (1 + cat_ids.index(cat)), 220, 90))
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                             "bbox": [x, y, s, s], "area": s * s, "iscrowd": int(k == 3 and j == 1)})
            name = f"{image_id:012d}.jpg"
            img.save(d / name, quality=95)
            images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        doc = {"images": images, "annotations": anns,
               "categories": [{"id": c, "name": f"thing{c}", "supercategory": "x"} for c in cat_ids]}
        (root / "coco" / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "coco" / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


WIKI_SENTENCES = [
    "The river rises in the northern hills and flows south through a wide valley .",
    "In 1887 the town built a stone bridge , which still carries the main road .",
    "Critics praised the album for its warm production and careful songwriting .",
    "The species feeds mainly on insects , although it will also take small fruit .",
    "After the war the company moved its offices to the capital @-@ based district .",
    "Her second novel sold over 40 @,@ 000 copies in its first year .",
]


def write_wikitext(root: Path) -> Path:
    """``root/wikitext/wiki.{train,valid,test}.raw`` in WikiText's raw format: `` = Title = ``
    headings, `` = = Section = = `` sub-headings, blank lines between paragraphs."""
    rng = np.random.default_rng(2)
    d = root / "wikitext"
    d.mkdir(parents=True, exist_ok=True)
    for split, articles in (("train", 12), ("valid", 3), ("test", 3)):
        lines = [" \n"]
        for a in range(articles):
            lines += [f" = Article {split} {a} = \n", " \n"]
            for sec in range(2):
                lines += [f" = = Section {sec} = = \n", " \n"]
                para = " ".join(WIKI_SENTENCES[int(i)] for i in rng.integers(0, len(WIKI_SENTENCES), 5))
                lines += [f" {para} \n", " \n"]
        (d / f"wiki.{split}.raw").write_text("".join(lines), encoding="utf-8")
    return root


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "data")


@pytest.fixture
def tiny_wikitext(tmp_path: Path) -> Path:
    return write_wikitext(tmp_path / "data")


@pytest.fixture
def tiny_all(tmp_path: Path) -> Path:
    """One data root holding all three tasks' real layouts."""
    root = tmp_path / "data"
    write_image_folders(root, ["n01", "n02", "n03"], 6, [(40, 30), (24, 48), (33, 33)])
    return write_wikitext(write_coco(root))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium for the module (``tests/browser.py``). It skips where none can start, and
    fails instead under ``NORMBENCH_REQUIRE_BROWSER=1``, which ``.ci/run`` sets after installing one."""
    import browser
    why = browser.available()
    if why is not None:
        if os.environ.get("NORMBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NORMBENCH_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    b = browser.start()
    yield b
    b.quit()
