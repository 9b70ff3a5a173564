"""Text corpora and tokenizers for the language-modelling tasks.

Embedded default: the topic texts of CPython's own documentation (``pydoc_data.topics``,
about 465 KB of real English that ships with every Python), split deterministically by
topic into train/valid/test. Real data: WikiText raw files ``DIR/wikitext/wiki.{train,
valid,test}.raw`` read unchanged (headings and blank lines included).

Tokenizers: byte-level (256 byte ids plus one end-of-document id; no training, and bits per
byte follow directly), or a byte-level BPE trained with the ``tokenizers`` library on the
train split and cached by the split's fingerprint.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from suite.errors import DataError

if TYPE_CHECKING:
    from suite.task import DatasetInfo

LAYOUT = "DIR/wikitext/wiki.{train,valid,test}.raw"
SPLITS = ("train", "valid", "test")
EOS = 256


def embedded_texts() -> dict[str, str]:
    from pydoc_data import topics
    parts: dict[str, list[str]] = {s: [] for s in SPLITS}
    for key in sorted(topics.topics):
        bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 20
        parts["valid" if bucket == 0 else "test" if bucket == 1 else "train"].append(topics.topics[key])
    return {s: "\n\n".join(p) for s, p in parts.items()}


def check_layout(root: Path) -> None:
    for split in SPLITS:
        f = root / "wikitext" / f"wiki.{split}.raw"
        if not f.is_file():
            raise DataError(f"{f} is missing: --data-root must hold the WikiText raw layout {LAYOUT}")
        if f.stat().st_size == 0 or not f.read_bytes()[:1 << 20].strip():
            raise DataError(f"{f} is empty: expected WikiText raw text ({LAYOUT})")


def real_texts(root: Path) -> dict[str, str]:
    check_layout(root)
    return {s: (root / "wikitext" / f"wiki.{s}.raw").read_text(encoding="utf-8") for s in SPLITS}


class ByteTokenizer:
    vocab_size = 257
    kind = "bytes"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class BPETokenizer:
    """Byte-level BPE from the ``tokenizers`` library, trained on the train split, cached."""

    kind = "bpe"

    def __init__(self, train_text: str, vocab_size: int) -> None:
        from tokenizers import ByteLevelBPETokenizer, Tokenizer
        digest = hashlib.sha256(train_text.encode()).hexdigest()[:16]
        cache = Path(os.environ.get("NORMBENCH_CACHE", Path.home() / ".cache" / "normbench")) / "tokenizers"
        path = cache / f"bpe-{digest}-{vocab_size}.json"
        if path.exists():
            self.tok = Tokenizer.from_file(str(path))
        else:
            bpe = ByteLevelBPETokenizer()
            bpe.train_from_iterator(iter(train_text.splitlines(keepends=True)), vocab_size=vocab_size,
                                    special_tokens=["<|endoftext|>"], show_progress=False)
            cache.mkdir(parents=True, exist_ok=True)
            bpe.save(str(path))
            self.tok = Tokenizer.from_file(str(path))
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        lines = text.splitlines(keepends=True)  # exact pieces (their concatenation is the text)
        for i in range(0, len(lines), 4096):  # bounded batches keep memory flat on WikiText-103
            for enc in self.tok.encode_batch(lines[i:i + 4096]):
                out += enc.ids
        return out

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)


class TokenStreams:
    """Token ids of each split as 1-D tensors, plus the byte counts for bits per byte."""

    info: DatasetInfo  # set by the task that loads the streams

    def __init__(self, texts: dict[str, str], tokenizer: ByteTokenizer | BPETokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids = {s: torch.tensor(tokenizer.encode(t), dtype=torch.long) for s, t in texts.items()}
        self.bytes = {s: len(t.encode("utf-8")) for s, t in texts.items()}
        self.fingerprint = hashlib.sha256("".join(texts[s] for s in SPLITS).encode()).hexdigest()[:16]

    def windows(self, split: str, seq_len: int, batch: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless random windows of ``seq_len`` tokens from ``split`` (packed, no padding)."""
        ids = self.ids[split]
        if len(ids) <= seq_len:
            raise DataError(f"the {split} split has {len(ids)} tokens, fewer than one window of {seq_len}")
        g = torch.Generator().manual_seed(seed)
        offsets = torch.arange(seq_len)
        while True:
            starts = torch.randint(0, len(ids) - seq_len, (batch,), generator=g)
            yield ids[starts[:, None] + offsets]

    def chunks(self, split: str, seq_len: int, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split in consecutive chunks; the last is padded, with a mask of the real tokens."""
        ids = self.ids[split]
        n = (len(ids) + seq_len - 1) // seq_len
        padded = torch.zeros(n * seq_len, dtype=torch.long)
        padded[:len(ids)] = ids
        mask = torch.zeros(n * seq_len, dtype=torch.bool)
        mask[:len(ids)] = True
        x, m = padded.view(n, seq_len), mask.view(n, seq_len)
        for i in range(0, n, batch):
            yield x[i:i + batch], m[i:i + batch]
