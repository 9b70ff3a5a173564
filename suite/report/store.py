"""The results store: append-only JSON lines, one ``write`` per row, flushed and fsync'd.

A row is never edited. If a process dies mid-write the file may end in a partial line;
readers skip it (with a warning) and the next append starts on a fresh line, so every
finished row stays readable. Rows of an older schema version are migrated as they are read
(``suite.report.rows.migrate``).
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from suite import faults, jsonio
from suite.errors import UsageError
from suite.parts import RowDoc
from suite.report.rows import Row, migrate, validate

ROWS = "rows.jsonl"
DONE_STATUSES = {"ok", "diverged", "not-applicable"}  # resume re-runs only `error` cells


#: set (to anything) to check every row against the published schema before it is written; the
#: test suite sets it, so every row its sweeps write is validated
VALIDATE_ENV = "NORMBENCH_VALIDATE_ROWS"


class Store:
    def __init__(self, out_dir: Path, *, schema: bool = True) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / ROWS
        self.schema = schema  # False for stores of other records (the history's rows carry extra fields)

    def append(self, row: Mapping[str, object]) -> None:
        """Write one record (a results row, or a history line: a row with its night's fields)."""
        if self.schema and os.environ.get(VALIDATE_ENV):
            validate(jsonio.clean(row))
        line = jsonio.dumps(row) + "\n"
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn last line from a killed writer: leave it, start afresh
                    line = "\n" + line
            data = line.encode()
            if faults.armed("row-write"):  # the tests' power cut half-way through a row
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                faults.kill_now()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[RowDoc]:
        return list(read_rows(self.path))

    def done_keys(self) -> set[str]:
        return set(self.done())

    def done(self) -> dict[str, str | None]:
        """key -> config_id of the newest row of every cell that needs no re-run (``error`` cells do)."""
        latest = {row.key: row for row in map(Row, self.rows())}
        return {k: row.config_id for k, row in latest.items() if row.status in DONE_STATUSES}

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer per results folder: an exclusive ``flock`` on ``.lock``, which holds the owner's pid.

        The kernel drops the lock when its owner dies (however it dies), so a stale ``.lock`` left
        by a killed sweep is simply taken over; a second live sweep fails at once with one line."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as f:
            _take(f, self.dir)
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield


def refuse_if_locked(folder: Path) -> None:
    """Fail at once (one line) if a live run holds ``folder``'s lock; cheap, so that the command line
    can ask before it imports torch. Taking the lock for real (``Store.lock``) stays the guarantee."""
    lock = Path(folder) / ".lock"
    if lock.exists():
        with open(lock, "a+") as f:
            _take(f, Path(folder))  # released when the file closes


def _take(f: IO[str], folder: Path) -> None:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip() or "?"
        raise UsageError(f"{folder} is in use by another run (pid {owner}); wait for it to finish, or "
                         f"pass another --out") from None


def read_rows(path: Path) -> Iterator[RowDoc]:
    """The rows of a store in the order written, each migrated to the current schema version."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                print(f"warning: {path}:{n} is not a whole row (a run was killed mid-write); skipped",
                      file=sys.stderr)
                continue
            if isinstance(row, dict):
                yield migrate(row, f"{path}:{n}")
