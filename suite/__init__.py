"""normbench: one harness to compare normalization and attention variants in Transformers.

Public API (contract, see docs): ``create_norm``, ``create_model``, ``deploy``,
``convert_ln_to_rms``, ``convert_ln_to_crms``, ``register_norm``, ``register_attention``.
"""
from __future__ import annotations

from suite.convert import convert_ln_to_crms, convert_ln_to_rms
from suite.deploy import deploy
from suite.env import suite_version
from suite.models import create_model
from suite.variants import create_norm, parse_variant, register_attention, register_norm

__version__ = suite_version()
__all__ = ["create_norm", "create_model", "deploy", "convert_ln_to_rms", "convert_ln_to_crms", "register_norm",
           "register_attention", "parse_variant", "__version__"]
