"""The command line (or pytest) in a process forked from the launcher's preloaded server (``conftest.start_cli``).

A real process of its own, in a session of its own (so a fault injected into it, which kills its
whole process group, ends it and its workers and nothing else), that runs ``suite.cli.main.main``
with the arguments, environment and output files it is given; only the interpreter start and the
import of torch, timm and transformers, which every fresh ``python run_suite.py`` pays, are saved.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    os.setsid()
    if spec.get("every_core") and hasattr(os, "sched_setaffinity"):   # not only the pytest worker's share
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(spec[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own fds, for its life
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    if spec.get("entry") == "pytest":  # a pytest run of its own (the benchmarks' smoke run)
        import pytest
        return int(pytest.main(spec["argv"]))
    from suite.cli.main import main as cli
    return cli(spec["argv"])
