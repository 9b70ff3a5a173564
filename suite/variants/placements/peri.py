"""``peri``: Peri-LN, a norm on both the input and the output of every sub-layer (Kim, Lee, Park,
Oh, Kim, Yoo, Shin, Han, Shin, Yoo, "Peri-LN: Revisiting Normalization Layer in the Transformer
Architecture", ICML 2025, arXiv 2502.02732).

A Pre-LN block computes ``x + F(Norm(x))``; Peri-LN computes ``x + Norm_out(F(Norm_in(x)))``,
so what each sub-layer adds to the residual stream is normalized too. Open models use this
placement: Gemma 2/3 (``post_attention_layernorm`` and ``post_feedforward_layernorm`` next to the
pre-norms) and OLMo-core's ``PeriNormTransformerBlock`` (``post_attention_norm``,
``post_feed_forward_norm``, applied before the residual dropout and add).

Surgery (the adapters' ``output_sites``): every attention and MLP sub-layer gets a child
``out_norm`` (a norm of the model's own kind, width ``d_model``) and a forward hook that applies it
to the sub-layer's output (the first element when the module returns a tuple, as HF attention
does). In a timm block the output norm comes before LayerScale and drop-path; in GPT-2 after the
projection's dropout (an identity in eval mode), before the add. The embeddings, the input
norms and the final norm stay as the model has them. The variant's norm then replaces these
output norms like every other norm, so ``rms@peri`` has RMSNorm in both places; output norms
read no residual stream and get no block index (``lns@peri`` scales the input norms only).

Supported: timm ViT/DeiT (Pre-LN ``Block``), HF GPT-2, HF LLaMA; elsewhere ``not-applicable``
(timm Swin: window attention pads and shifts inside the block). Norms that are exact rewrites
of a Pre-LN model (``prerms``, ``crms``) refuse it (``check_placement``).

Deploy: a foldable output norm folds into the sub-layer's last linear map (its producer side:
``W <- diag(a) W``, ``c <- a c + b``), exact; any other output norm is kept as it is.
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from suite.models.arch import OUTPUT_NORM, sites_of
from suite.models.surgery import new_model_norm
from suite.variants import register_placement


class OutputNormHook:
    """Forward hook: apply the module's ``out_norm`` child to its output (the first element of a tuple)."""

    def __init__(self, tuple_output: bool) -> None:
        self.tuple_output = tuple_output

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        norm = getattr(module, OUTPUT_NORM)
        if isinstance(norm, nn.Identity):
            return None
        if self.tuple_output:
            return (norm(output[0]), *output[1:])
        return norm(output)


@register_placement("peri")
class PeriLN:
    """Peri-LN: a second norm on each sub-layer's output, before the residual add (Kim et al., ICML 2025)."""

    version = "1"

    @classmethod
    def apply(cls, model: nn.Module, kwargs: dict) -> dict:
        sites, _ = sites_of(model, "peri", lambda a, m: a.output_sites(m))
        for site in sites:
            module = model.get_submodule(site.module)
            if hasattr(module, OUTPUT_NORM):
                raise ValueError(f"{site.module} already has an output norm")
            module.add_module(OUTPUT_NORM, new_model_norm(model, site.width))
            module.register_forward_hook(OutputNormHook(site.tuple_output))
        return {"placement": "peri", "output_norms": len(sites), "blocks": max(s.layer for s in sites)}
