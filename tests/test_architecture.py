"""The layout contract: no import cycles, each package imports only the layers below it, a small top level."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("suite", "tasks")

#: who may import whom (module-name prefixes); mirrors the docstring of each package's __init__
CORE = ("suite.errors", "suite.declare", "suite.registry", "suite.jsonio", "suite.env", "suite.launch", "suite.faults",
        "suite.parts")
VARIANT_CONTRACT = ("suite.variants.__init__", "suite.variants.base", "suite.variants.masking",
                    "suite.variants.tokenbn", "suite.variants.rmsnorm")
ALLOWED = {
    "suite.errors": (), "suite.faults": (),
    "suite.declare": ("suite.errors", "suite.parts"), "suite.registry": CORE, "suite.jsonio": CORE, "suite.env": CORE,
    "suite.launch": CORE, "suite.parts": (),
    "suite.variants.norms": CORE + ("suite.variants", "suite.models"),
    "suite.variants.attention": CORE + ("suite.variants", "suite.models"),
    "suite.variants.placements": CORE + ("suite.variants", "suite.models"),
    "suite.variants": CORE + VARIANT_CONTRACT,
    "suite.models": CORE + VARIANT_CONTRACT + ("suite.models",),
    "suite.task": CORE + ("suite.variants", "suite.models"),
    "suite.measure": CORE + ("suite.variants", "suite.models", "suite.measure", "suite.task"),
    "suite.report": CORE + ("suite.measure", "suite.report"),
    "suite.regression": CORE + ("suite.measure", "suite.report", "suite.regression"),
    "suite.sweep": CORE + ("suite.task", "suite.variants", "suite.models", "suite.measure", "suite.report",
                           "suite.sweep"),
    "suite.bench": CORE + ("suite.variants", "suite.models", "suite.measure", "suite.report", "suite.regression",
                           "suite.bench"),
    "suite.site": CORE + ("suite.measure", "suite.report", "suite.regression", "suite.site"),
    "suite.cli": ("suite",),
    "suite.__init__": CORE + ("suite.models", "suite.variants"),
    "tasks": CORE + ("suite.task", "suite.variants", "suite.models", "tasks"),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every suite/tasks module ``path`` imports, at any level (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                out.add(name if name in known else f"{name}.__init__")
    return {n for n in out if n in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_import_cycles_function_level_imports_included() -> None:
    try:
        tuple(graphlib.TopologicalSorter(graph()).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def rule_for(name: str) -> tuple[str, ...]:
    best = max((k for k in ALLOWED if name == k or name.startswith(k + ".")), key=len, default=None)
    assert best is not None, f"{name} is in no layer of the architecture table; add it to ALLOWED"
    return ALLOWED[best]


def test_each_package_imports_only_the_layers_it_declares() -> None:
    bad = []
    for name, deps in graph().items():
        allowed = rule_for(name)
        bad += [f"{name} imports {d}" for d in deps
                if not any(d == a or d.startswith(a + ".") for a in allowed)]
    assert not bad, "layering violations:\n" + "\n".join(sorted(bad))


def test_top_level_is_small_and_every_package_says_what_it_may_import() -> None:
    top = sorted(p.name for p in (ROOT / "suite").glob("*.py"))
    assert len(top) <= 10, top
    for init in (ROOT / "suite").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "may import" in doc.lower(), f"{init} lacks its import rule"


def test_the_core_never_names_a_variant() -> None:
    """Plugins own their special cases: the harness asks them through hooks."""
    names = ("prepbn", "TokenBatchNorm", "slab_convention", "SwinSLABlock", "apply_sla", "derf", "lns", "qknorm",
             "peri", "dyt", "DyT", "Derf", "PeriLN", "QKNorm")
    for name, path in modules().items():
        if name.startswith(("suite.variants", "suite.bench", "suite.cli")) or name.startswith("tasks"):
            continue
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        body = ast.unparse(ast.parse(code))  # docstrings stay, comments go
        tree = ast.parse(body)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                ident = node.id if isinstance(node, ast.Name) else node.attr
                assert ident not in names, f"{name} names {ident}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                pytest.fail(f"{name} names {node.value!r}")


def test_nothing_points_outside_the_repository() -> None:
    tracked = [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
               and p.suffix in {".py", ".md", ".toml", ".yml", ".yaml", ".json", ".txt", ""}
               and "results" not in p.relative_to(ROOT).parts[:1]]
    outside = "../" + "shared"  # spelled in two parts so this file does not match itself
    offenders = [str(p.relative_to(ROOT)) for p in tracked if outside in p.read_text(errors="ignore")]
    assert offenders == [], f"files referring to {outside}: {offenders}"


def test_the_public_api_resolves_lazily_and_import_suite_does_not_load_torch() -> None:
    """``import suite`` stays cheap (the command line refuses a busy folder before torch loads);
    every public name still resolves."""
    import subprocess
    import sys
    code = ("import sys, suite; assert 'torch' not in sys.modules, 'import suite loaded torch'; "
            "import suite.cli.main, suite.report.store; assert 'torch' not in sys.modules, 'CLI loaded torch'; "
            "assert set(suite.__all__) == {'__version__', *suite._API}, 'suite.__all__ and suite._API differ'; "
            "[getattr(suite, n) for n in suite.__all__]; assert 'torch' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-1500:]
