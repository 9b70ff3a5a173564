"""normbench: one harness to compare normalization and attention variants in Transformers.

Public API (documented in README.md and docs/): ``create_norm``, ``create_model``, ``deploy``,
``convert_ln_to_rms``, ``convert_ln_to_crms``, ``register_norm``, ``register_attention``,
``register_placement``, ``parse_variant``. The packages below say what they are for and what they may import:
``variants`` (norm and attention plugins and their contract), ``models`` (creation, surgery,
deploy, conversions), ``measure`` (timing, memory, provenance), ``sweep`` (running cells),
``report`` (the row schema, store, leaderboard), ``regression`` (verdicts, history),
``bench`` (stand-alone benchmarks) and ``cli`` (the command line). The Task API is
``suite.task``; task plugins live in the top-level ``tasks`` package.
"""
from __future__ import annotations

from suite.env import suite_version
from suite.models.convert import convert_ln_to_crms, convert_ln_to_rms
from suite.models.create import create_model
from suite.models.deploy import deploy
from suite.variants import create_norm, parse_variant, register_attention, register_norm, register_placement

__version__ = suite_version()
__all__ = [
           "__version__",
           "convert_ln_to_crms",
           "convert_ln_to_rms",
           "create_model",
           "create_norm",
           "deploy",
           "parse_variant",
           "register_attention",
           "register_norm",
           "register_placement",
]
