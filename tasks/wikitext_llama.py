"""``wikitext-llama``: the WikiText task on an HF LLaMA config (RMSNorm before each sub-layer).

SLAB's language-model placement applies here: ``prepbn`` replaces each RMSNorm by PRepBN
with an RMSNorm branch, eta and the BN affine initialised to 0, and an RMSNorm-only warm-up.
Pre-(C)RMSNorm do not apply (no LayerNorm to convert): those cells are ``not-applicable``.
Not in the default sweep; ask for it with ``--tasks wikitext-llama``.
"""
from __future__ import annotations

from suite.parts import JsonObject
from suite.task import register_task
from tasks.wikitext import WikiText


@register_task("wikitext-llama")
class WikiTextLlama(WikiText):
    """Causal LM on HF LLaMA (RMSNorm): perplexity, bits/byte; embedded: CPython's pydoc text."""

    model = "llama-tiny"
    paper_model = "llama-small"
    default = False

    def positions(self, seq: int) -> JsonObject:
        return {"max_position_embeddings": seq}
