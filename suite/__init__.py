"""normbench: one harness to compare normalization and attention variants in Transformers.

Public API (documented in README.md and docs/): ``create_norm``, ``create_model``, ``deploy``,
``convert_ln_to_rms``, ``convert_ln_to_crms``, ``register_norm``, ``register_attention``,
``register_placement``, ``parse_variant``. The packages below say what they are for and what they may import:
``variants`` (norm and attention plugins and their contract), ``models`` (creation, surgery,
deploy, conversions), ``measure`` (timing, memory, provenance), ``sweep`` (running cells),
``report`` (the row schema, store, leaderboard), ``regression`` (verdicts, history),
``bench`` (stand-alone benchmarks) and ``cli`` (the command line). The Task API is
``suite.task``; task plugins live in the top-level ``tasks`` package. Beneath them all (any
package may import these): ``errors``, ``registry``, ``jsonio``, ``env``, ``launch``, ``faults``,
``declare`` (options declared once) and ``parts`` (the typed JSON documents that processes
exchange and rows are made of, mirrored from the published row schema).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from suite.env import suite_version

if TYPE_CHECKING:  # the names below are imported on first use (see __getattr__)
    from suite.models.convert import convert_ln_to_crms, convert_ln_to_rms
    from suite.models.create import create_model
    from suite.models.deploy import deploy
    from suite.variants import create_norm, parse_variant, register_attention, register_norm, register_placement

#: public name -> the module that defines it. Imported lazily, so that ``import suite`` (and the
#: command line's argument checks, which must answer at once) do not pay for torch and timm.
_API = {"convert_ln_to_crms": "suite.models.convert", "convert_ln_to_rms": "suite.models.convert",
        "create_model": "suite.models.create", "deploy": "suite.models.deploy", "create_norm": "suite.variants",
        "parse_variant": "suite.variants", "register_attention": "suite.variants", "register_norm": "suite.variants",
        "register_placement": "suite.variants"}

__version__ = suite_version()
__all__ = ["__version__", "convert_ln_to_crms", "convert_ln_to_rms", "create_model", "create_norm", "deploy",
           "parse_variant", "register_attention", "register_norm", "register_placement"]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
