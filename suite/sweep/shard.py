"""``--shard I/N``: split one sweep over N runners (``suite.sweep.merge`` puts it back together).

The unit of a shard is a (task, seed) group, never a single cell: a group's variants are
timed interleaved in one process, and that pairing is what makes the latency ratio to
``ln`` resolve a few percent. The groups are sorted by (task, seed) and dealt round-robin:
group i of the sorted list goes to shard ``i % N + 1``. Every shard of one sweep gets the
same ``--tasks``/``--seeds``, so they agree on the list without talking to each other;
each cell is in exactly one shard, and the shards' sizes differ by at most one group.
"""
from __future__ import annotations

from dataclasses import dataclass

from suite.errors import UsageError

FIX = "give I/N with 1 <= I <= N, e.g. --shard 1/4"


@dataclass(frozen=True)
class Shard:
    index: int   # 1-based
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(f"malformed --shard {self.index}/{self.count}: {FIX}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"malformed --shard {text!r}: {FIX}")
    return Shard(int(parts[0]), int(parts[1]))


def shard_groups(tasks: list[str], seeds: list[int], shard: Shard | None) -> list[tuple[str, int]]:
    """The (task, seed) groups shard ``shard`` runs (all of them without a shard)."""
    groups = sorted({(t, s) for t in tasks for s in seeds})
    return groups if shard is None else groups[shard.index - 1::shard.count]
