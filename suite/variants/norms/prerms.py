"""``prerms``: Pre-RMSNorm (Jiang et al., NeurIPS 2023, arXiv 2305.14858).

Trained in the zero-mean form equivalent to Pre-LN (see ``suite.variants.norms._stream``),
so it follows ``ln``'s trajectory from the same seed; deployed by the exact conversion to
RMSNorm without affine on a zero-mean stream (``suite.convert_ln_to_rms``). Applies to
Pre-LN timm ViT/DeiT and HF GPT-2; elsewhere the cell is ``not-applicable``.
"""
from __future__ import annotations

from suite.models.convert import convert_ln_to_rms
from suite.variants import register_norm
from suite.variants.norms._stream import StreamRMSNorm


@register_norm("prerms")
class PreRMSNorm(StreamRMSNorm):
    """Pre-RMSNorm: trained as the Pre-LN-equivalent zero-mean form, deployed as RMSNorm (exact)."""

    version = "1"
    converter = staticmethod(convert_ln_to_rms)
