"""``crms``: Pre-CRMSNorm (Jiang et al., NeurIPS 2023, arXiv 2305.14858).

Trained exactly like ``prerms`` (the Pre-LN-equivalent zero-mean form); deployed by the
exact conversion to a residual stream of width d-1 (``suite.convert_ln_to_crms``): the
last coordinate of a zero-mean vector is minus the sum of the others, so it is not stored.
Note for benchmarks: width d-1 misaligns matrix shapes, which can cost more than it saves.
"""
from __future__ import annotations

from suite.models.convert import convert_ln_to_crms
from suite.variants import register_norm
from suite.variants.norms._stream import StreamRMSNorm


@register_norm("crms")
class PreCRMSNorm(StreamRMSNorm):
    """Pre-CRMSNorm: trained as the Pre-LN-equivalent zero-mean form, deployed at width d-1 (exact)."""

    version = "1"
    converter = staticmethod(convert_ln_to_crms)
