"""The wikitext task: embedded corpus, real raw layout, metrics, masking, malformed data."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import suite
from suite.errors import DataError
from suite.variants.masking import token_mask
from tasks.textdata import ByteTokenizer, TokenStreams, embedded_texts
from tasks.wikitext import WikiText


def test_embedded_corpus_is_real_english_split_deterministically() -> None:
    a, b = embedded_texts(), embedded_texts()
    assert a == b and all(len(a[s]) > 5000 for s in ("train", "valid", "test"))
    assert len(a["train"]) > 10 * len(a["test"]) and " the " in a["test"]
    task = WikiText()
    data = task.open(None, task.profile("smoke", None)).data
    assert data.info.kind == "embedded" and "embedded" in data.info.label


def test_real_layout_reads_headings_and_blank_lines_unchanged(tiny_wikitext: Path) -> None:
    task = WikiText()
    data = task.open(tiny_wikitext, task.profile("smoke", tiny_wikitext)).data
    raw = (tiny_wikitext / "wikitext" / "wiki.test.raw").read_text()
    assert " = = Section 0 = = \n \n" in raw
    assert ByteTokenizer().decode(data.ids["test"].tolist()) == raw
    assert data.info.kind == "real" and data.info.path == str((tiny_wikitext / "wikitext").resolve())
    assert data.bytes["test"] == len(raw.encode())


def test_chunks_cover_the_split_once_and_mask_only_padding(tiny_wikitext: Path) -> None:
    task = WikiText()
    data = task.open(tiny_wikitext, task.profile("smoke", tiny_wikitext)).data
    ids, masks = zip(*data.chunks("valid", 100, 3))
    ids, masks = torch.cat(ids), torch.cat(masks)
    assert torch.equal(ids[masks], data.ids["valid"]) and not masks[-1, -1]


@pytest.mark.parametrize("variant", ["ln", "prepbn"])
def test_metrics_do_not_depend_on_eval_batching(tiny_wikitext: Path, variant: str) -> None:
    task = WikiText()
    prof = task.profile("smoke", tiny_wikitext)
    task.open(tiny_wikitext, prof)
    torch.manual_seed(0)
    model = task.build_model(suite.parse_variant(variant), {})
    a = task.evaluate(model, torch.device("cpu"))
    prof.recipe.eval_batch_size = 1  # the bound profile is this very object
    b = task.evaluate(model, torch.device("cpu"))
    assert a["ppl"] == pytest.approx(b["ppl"], rel=1e-5)
    # bits per byte follow from the test perplexity: a byte tokenizer predicts ~every byte
    assert a["bpb"] == pytest.approx(math.log2(a["ppl"]), rel=0.05)


def test_batch_norm_training_statistics_exclude_padding() -> None:
    bn = suite.create_norm("bn", 4).double().train()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 2:] = False
    garbage = x.clone()
    garbage[~mask] = 1e4
    with token_mask(mask):
        y = bn(garbage)
    real = x[mask]
    expected = (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(y[mask], expected)
    torch.testing.assert_close(bn.running_mean, 0.1 * real.mean(0))


@pytest.mark.parametrize("breakage, needle", [
    (lambda d: (d / "wiki.valid.raw").unlink(), "wiki.valid.raw is missing"),
    (lambda d: (d / "wiki.test.raw").write_text(" \n \n"), "wiki.test.raw is empty"),
    (lambda d: (d / "wiki.train.raw").write_text(""), "wiki.train.raw is empty"),
])
def test_malformed_wikitext_is_a_one_line_error_naming_the_file(tiny_wikitext: Path, breakage, needle) -> None:
    breakage(tiny_wikitext / "wikitext")
    with pytest.raises(DataError, match=needle) as e:
        WikiText().check_data(tiny_wikitext)
    assert "\n" not in str(e.value)


def test_a_split_shorter_than_one_window_is_a_clear_error() -> None:
    streams = TokenStreams({"train": "tiny", "valid": "x", "test": "y"}, ByteTokenizer())
    with pytest.raises(DataError, match="fewer than one window"):
        next(streams.windows("train", 128, 2, seed=0))


def test_bpe_tokenizer_trains_on_train_split_caches_and_round_trips(tiny_wikitext: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.textdata import BPETokenizer, real_texts
    monkeypatch.setenv("NORMBENCH_CACHE", str(tmp_path / "cache"))
    texts = real_texts(tiny_wikitext)
    tok = BPETokenizer(texts["train"], 400)
    cached = list((tmp_path / "cache" / "tokenizers").glob("bpe-*-400.json"))
    assert len(cached) == 1 and 256 < tok.vocab_size <= 400
    again = BPETokenizer(texts["train"], 400)  # loaded from the cache, same merges
    ids = tok.encode(texts["test"])
    assert again.encode(texts["test"]) == ids and tok.decode(ids) == texts["test"]
    assert len(ids) < 0.6 * len(texts["test"].encode())  # merges learnt: fewer tokens than bytes
