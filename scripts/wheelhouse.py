#!/usr/bin/env python3
"""Wheels for the lent GPU machine: what its image lacks of the suite's dependencies, for CPython 3.12.

``make wheelhouse`` (``python3 scripts/wheelhouse.py --dest .whl``) runs here, where a package
registry is reachable, and downloads binary wheels for CPython 3.12 on manylinux x86_64 (or pure
Python ones) of every dependency of the suite (``pyproject.toml``: run and test) that is not in
the image (``scripts/gpu-image-packages.txt``), then of their own dependencies that are not
there either, at the versions ``requirements.lock`` pins. ``gpu-check`` installs them from the
folder with ``--no-index``. Standard library only (pip does the downloading).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "scripts" / "gpu-image-packages.txt"
PYTHON = "3.12"
#: manylinux tags pip should accept for the GPU machine (glibc 2.39 there; pip matches tags exactly)
PLATFORMS = ["manylinux_2_39_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
LIMIT = 64 * 2**20  # what travels to the device machine, the whole working tree included


def normalize(name: str) -> str:
    """PEP 503: case and runs of ``-_.`` do not tell distributions apart."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path = IMAGE) -> set[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return {normalize(line) for line in lines if line and not line.startswith("#")}


def pins(path: Path = ROOT / "requirements.lock") -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, eq, version = line.strip().partition("==")
        if eq:
            out[normalize(name)] = version
    return out


def suite_dependencies(path: Path = ROOT / "pyproject.toml") -> list[str]:
    meta = tomllib.loads(path.read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["test"]
    return [re.split(r"[=<>!~;\[ ]", r, maxsplit=1)[0] for r in reqs]


def requires(wheel: Path) -> list[str]:
    """The names a wheel requires unconditionally (``Requires-Dist`` without an extra or a marker
    that excludes Linux CPython 3.12)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    out = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        name, _, marker = spec.partition(";")
        if "extra" in marker or ('python_version < "3.' in marker and not _holds_312(marker)):
            continue
        out.append(re.split(r"[=<>!~\[ (]", name.strip(), maxsplit=1)[0])
    return out


def _holds_312(marker: str) -> bool:
    m = re.search(r'python_version\s*<\s*"3\.(\d+)"', marker)
    return m is None or int(m.group(1)) > 12


def wheel_name(wheel: Path) -> str:
    return normalize(wheel.name.split("-")[0])


def tags_ok(wheel: Path) -> bool:
    """For CPython 3.12 (or any Python 3) on manylinux x86_64 (or any platform)."""
    parts = wheel.name[:-len(".whl")].split("-")
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    py_ok = any(t in ("cp312", "py3", "py2.py3") for t in py.split(".")) or py == "py3"
    abi_ok = any(t in ("cp312", "abi3", "none") for t in abi.split("."))
    plat_ok = plat == "any" or all(t.startswith("manylinux") and t.endswith("x86_64") for t in plat.split("."))
    return py_ok and abi_ok and plat_ok


def download(names: list[str], dest: Path, versions: dict[str, str]) -> None:
    specs = [f"{n}=={versions[normalize(n)]}" if normalize(n) in versions else n for n in names]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp", "-d", str(dest)]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    subprocess.run(cmd + specs, check=True)


def build(dest: Path) -> list[Path]:
    """Download the missing dependencies and their missing dependencies, until nothing is missing."""
    dest.mkdir(parents=True, exist_ok=True)
    have, versions = image_packages(), pins()
    wanted = [n for n in suite_dependencies() if normalize(n) not in have]
    done: set[str] = set()
    while wanted:
        download(wanted, dest, versions)
        done |= {normalize(n) for n in wanted}
        needed = {normalize(r) for w in dest.glob("*.whl") for r in requires(w)}
        wanted = sorted(needed - have - done)
    wheels = sorted(dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    if size > LIMIT // 2:
        raise SystemExit(f"wheelhouse: {size / 2**20:.1f} MiB of wheels, more than half of what may travel to the "
                         f"device machine (64 MiB in all)")
    return wheels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=ROOT / ".whl")
    args = p.parse_args()
    wheels = build(args.dest)
    bad = [w.name for w in wheels if not tags_ok(w)]
    if bad:
        raise SystemExit(f"wheelhouse: not for CPython 3.12 on manylinux x86_64: {', '.join(bad)}")
    print(f"wheelhouse: {len(wheels)} wheels in {args.dest} "
          f"({sum(w.stat().st_size for w in wheels) / 2**20:.1f} MiB): {', '.join(w.name for w in wheels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
