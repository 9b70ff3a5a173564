"""``create_model``: a timm model or a named LM config, with a variant swapped in."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import timm
import torch.nn as nn

from suite.errors import UsageError
from suite.models.deploy import attach_reparam
from suite.models.surgery import swap_norms
from suite.variants import ATTENTION, PLACEMENTS, Variant, parse_variant
from suite.variants.base import check_placement

SUPPORTED_TIMM_PREFIXES = ("vit_", "deit_", "deit3_", "swin_")

#: named language-model configs (HF transformers, random init, nothing downloaded)
LM_CONFIGS: dict[str, tuple[str, dict[str, float]]] = {
    "gpt2-tiny": ("gpt2", dict(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=512,
                               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)),
    "gpt2-small": ("gpt2", dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)),
    "llama-tiny": ("llama", dict(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=128)),
    "llama-small": ("llama", dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                                  num_attention_heads=12, num_key_value_heads=12, vocab_size=32000,
                                  max_position_embeddings=1024)),
}


def create_model(name: str, variant: str | Variant = "ln", *, variant_kwargs: Mapping[str, object] | None = None,
                 attention_kwargs: Mapping[str, object] | None = None, **model_kwargs: Any) -> nn.Module:
    """Build ``name`` with ``variant`` swapped in (random init; no weights are downloaded).

    ``name``: a timm ViT/DeiT/Swin name (``model_kwargs`` pass through to timm) or a named LM
    config from ``LM_CONFIGS`` (``model_kwargs`` override config fields). ``variant_kwargs``
    go to the norm's constructor (e.g. ``{"total_steps": 1000}``). ``variant`` may name
    attention plugins and a placement (``"prepbn+sla"``, ``"rms+qknorm@peri"``);
    ``attention_kwargs`` go to the attention plugins (for ``sla``, ``{"slab_convention": True}``
    builds a ViT/DeiT the SLAB-DeiT way: average pooling, no class token). What the attention
    surgery did is kept in ``model.normbench_attention``, what the placement did in
    ``model.normbench_placement``.

    Order: the base model; the attention plugins (mechanism, then modifiers); the placement;
    then the norm surgery, which replaces the model's own norms and those the plugins added
    (they add norms of the model's own kind). A variant that does not apply raises
    ``suite.errors.NotApplicable`` with the reason. The model gets a child module through which
    timm's ``reparameterize_model`` deploys it (``suite.models.deploy.ReparamHandle``).
    """
    v = variant if isinstance(variant, Variant) else parse_variant(variant)
    attention_kwargs = dict(attention_kwargs or {})
    attentions = [ATTENTION.get(a) for a in v.attentions]
    placement = PLACEMENTS.get(v.placement) if v.placement is not None else None
    norm_cls = v.norm_cls
    if v.placement is not None:
        check_placement(norm_cls, v.placement)
    for attention in attentions:
        adjust = getattr(attention, "adjust_model_kwargs", None)
        if callable(adjust):  # an attention variant may need the base model built its way (e.g. SLAB-DeiT pooling)
            model_kwargs = adjust(name, dict(model_kwargs), attention_kwargs)
    model = _build_base(name, model_kwargs)
    reports = [attention.apply(model, attention_kwargs) for attention in attentions]
    if reports:
        model.normbench_attention = (reports[0] if len(reports) == 1  # type: ignore[assignment]
                                     else {"attention": v.attention, "parts": reports})
    if placement is not None:
        model.normbench_placement = placement.apply(model, {})
    prepare = getattr(norm_cls, "prepare_model", None)
    if callable(prepare):
        prepare(model, dict(variant_kwargs or {}))
    else:
        swap_norms(model, norm_cls, variant_kwargs)
    attach_reparam(model)
    model.normbench_variant = v.name  # type: ignore[assignment]
    return model


def check_model_name(name: str) -> None:
    """``UsageError`` (one line, the fix) unless ``name`` is a supported timm name or LM config."""
    if name not in LM_CONFIGS and (not name.startswith(SUPPORTED_TIMM_PREFIXES) or not timm.is_model(name)):
        raise UsageError(f"unsupported model {name!r}: use a timm ViT/DeiT/Swin name (e.g. vit_tiny_patch16_224, "
                         f"deit_small_patch16_224, swin_tiny_patch4_window7_224) or one of {', '.join(LM_CONFIGS)}")


def _build_base(name: str, model_kwargs: dict[str, object]) -> nn.Module:
    check_model_name(name)
    if name in LM_CONFIGS:
        return build_lm(name, **model_kwargs)
    return timm.create_model(name, pretrained=False, **model_kwargs)


def build_lm(name: str, **overrides: Any) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    family, base = LM_CONFIGS[name]
    cfg_cls, model_cls = (GPT2Config, GPT2LMHeadModel) if family == "gpt2" else (LlamaConfig, LlamaForCausalLM)
    fields = {**base, **overrides}
    for token in ("bos_token_id", "eos_token_id"):  # keep special tokens inside a shrunken vocabulary
        if family == "gpt2" and fields.get(token, 50256) >= fields["vocab_size"]:
            fields[token] = fields["vocab_size"] - 1
    fields.setdefault("loss_type", "ForCausalLM")  # name the loss: transformers warns when it must guess
    config = cfg_cls(**fields)
    model = model_cls(cast(Any, config))  # the config class goes with the model class
    model.loss_type = "ForCausalLM"  # transformers reads the attribute, not only the config, and warns on None
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
