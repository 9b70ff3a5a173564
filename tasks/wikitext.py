"""``wikitext``: causal language modelling on HF GPT-2 (Pre-LN, the Pre-RMSNorm paper's model).

Metrics: perplexity on test (and valid) and bits per byte on test (tokenizer-independent:
total negative log-likelihood in bits over the UTF-8 bytes of the predicted text). The
split is read as consecutive non-overlapping windows; the first token of each window has
no context. Training windows are packed (no padding); the padded last evaluation window
carries a token mask, so BN-family statistics never see padding. Note for BN-family
variants: in training their batch statistics mix all positions of the batch, future tokens
included; evaluation uses running statistics.
Real data: ``DIR/wikitext/wiki.{train,valid,test}.raw``; embedded: CPython's pydoc topics.
"""
from __future__ import annotations

import math
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from suite.parts import BuildArgs, GenerationSpec, InputSpec, JsonObject
from suite.task import DatasetInfo, Profile, Recipe, Task, register_task, setting, setting_object, to_device
from suite.variants import Variant
from suite.variants.masking import token_mask
from tasks.textdata import BPETokenizer, ByteTokenizer, TokenStreams, check_layout, embedded_texts, real_texts


@register_task("wikitext")
class WikiText(Task[TokenStreams]):
    """Causal LM on HF GPT-2 (Pre-LN): perplexity, bits/byte; embedded: CPython's pydoc text."""

    version = "1"
    family = "lm"
    model = "gpt2-tiny"
    paper_model = "gpt2-small"
    primary_metric = "ppl"
    metrics = {"ppl": "lower", "ppl_valid": "lower", "bpb": "lower"}
    throughput_unit = "tok/s"
    data_folder = "wikitext"
    curve_eval_items = 16
    default = True

    def profiles(self, embedded: bool) -> dict[str, Profile]:
        seq = 128
        smoke = Profile("smoke", self.model, self.positions(seq),
                        Recipe(steps=400, batch_size=16, lr=2e-3, weight_decay=0.1, warmup_steps=40, grad_clip=1.0,
                               eval_batch_size=32),
                        throughput_batch=16, timing_s_per_model=4.0,
                        extra={"seq_len": seq, "tokenizer": "bytes", "generation": {"prompt": 32, "new_tokens": 32}})
        out = {"smoke": smoke}
        if not embedded:  # GPT-2 small on WikiText-103 (the Pre-RMSNorm paper's language-model setting)
            out["paper"] = Profile(
                "paper", self.paper_model, self.positions(1024),
                Recipe(steps=100_000, batch_size=32, lr=6e-4, weight_decay=0.1, warmup_steps=2000, min_lr=6e-5,
                       grad_clip=1.0, eval_batch_size=8, scale_lr_with_batch=True),
                throughput_batch=8, timing_s_per_model=20.0,
                extra={"seq_len": 1024, "tokenizer": "bpe:32768", "generation": {"prompt": 128, "new_tokens": 64},
                       "hardware": "8 x 40-80 GB GPUs; about 1 day per cell (3.3B tokens seen)"}, amp="bf16")
        return out

    def positions(self, seq: int) -> JsonObject:
        return {"n_positions": seq}

    # -- data -----------------------------------------------------------------------------
    def data_identity(self, data_root: Path | None) -> dict[str, object]:
        out = super().data_identity(data_root)  # the embedded corpus is CPython's own documentation
        return out | {"python": platform.python_version()} if data_root is None else out

    def check_data(self, data_root: Path | None) -> None:
        if data_root is not None:
            check_layout(data_root)

    def load(self, data_root: Path | None, profile: Profile) -> TokenStreams:
        texts = embedded_texts() if data_root is None else real_texts(data_root)
        kind = setting(profile.extra, "tokenizer", str, "bytes")
        tok = ByteTokenizer() if kind == "bytes" else BPETokenizer(texts["train"], int(kind.split(":")[1]))
        streams = TokenStreams(texts, tok)
        name = f"python-{platform.python_version()}-pydoc-topics" if data_root is None else "wikitext"
        path = None if data_root is None else str((data_root / "wikitext").resolve())
        streams.info = DatasetInfo(name, "embedded" if data_root is None else "real", path,
                                   len(streams.ids["train"]), len(streams.ids["test"]), streams.fingerprint)
        return streams

    @property
    def seq_len(self) -> int:
        """The profile's context length: training windows, evaluation chunks and timing inputs."""
        return setting(self.prof.extra, "seq_len", int)

    def train_batches(self, seed: int) -> Iterator[torch.Tensor]:
        rank, _ = self.shard  # independent random windows per process
        return self.data.windows("train", self.seq_len, self.prof.recipe.batch_size, seed + 1000 * rank)

    # -- model, loss, metrics -----------------------------------------------------------------
    def model_args(self, variant: Variant, variant_kwargs: Mapping[str, object]) -> BuildArgs:
        args = super().model_args(variant, variant_kwargs)
        args["kwargs"] |= {"vocab_size": self.data.tokenizer.vocab_size}
        args["call"] = "logits"  # timed and exported as ids -> logits, without the KV cache
        return args

    def forward(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(input_ids=batch).logits

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(input_ids=batch, labels=batch).loss

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, device: torch.device, limit: int | None = None) -> dict[str, float]:
        model.eval()
        data, seq_len = self.data, self.seq_len
        out = {}
        for split in ("valid", "test") if limit is None else ("test",):  # a curve point: test perplexity only
            nll, tokens, windows = 0.0, 0, 0
            for ids, mask in data.chunks(split, seq_len, self.prof.recipe.eval_batch_size):
                if limit is not None and windows >= limit:
                    break
                if limit is not None:
                    ids, mask = ids[:limit - windows], mask[:limit - windows]
                windows += len(ids)
                ids, mask = to_device((ids, mask), device)
                with token_mask(mask):
                    logits = model(input_ids=ids).logits.float()
                target_ok = mask[:, 1:] & mask[:, :-1]
                losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
                nll += float(losses[target_ok].sum())
                tokens += int(target_ok.sum())
            out["ppl" if split == "test" else "ppl_valid"] = math.exp(nll / tokens)
            if split == "test" and limit is None:  # bytes of the predicted text, tokenizer-independent
                predicted_bytes = data.bytes[split] * tokens / len(data.ids[split])
                out["bpb"] = nll / math.log(2) / predicted_bytes
        return out

    def sample_inputs(self, n: int, device: torch.device) -> torch.Tensor:
        ids, _ = next(iter(self.data.chunks("test", 64, n)))
        return ids.to(device)

    def eval_inputs(self, n: int, device: torch.device) -> torch.Tensor:
        ids, _ = next(iter(self.data.chunks("test", self.seq_len, n)))
        return ids.to(device)

    def input_spec(self) -> InputSpec:
        seq = self.seq_len
        gen = setting_object(self.prof.extra, "generation")
        generation: GenerationSpec | None = None if gen is None else {
            "prompt": setting(gen, "prompt", int), "new_tokens": setting(gen, "new_tokens", int)}
        return {"kind": "tokens", "seq_len": seq, "vocab_size": self.data.tokenizer.vocab_size, "items": seq,
                "generation": generation}
