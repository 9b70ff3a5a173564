"""Models and what is done to them: creation, norm surgery, deploy folding, exact conversions.

``create`` builds timm and HF models with a variant swapped in; ``detection`` wraps a
backbone in FCOS; ``surgery`` swaps norm modules; ``fold`` and ``deploy`` produce the
inference form; ``convert`` is the exact Pre-LN -> Pre-(C)RMSNorm rewrite; ``arch/`` holds
one adapter per architecture family (where norms, their consumers and the stream producers sit).
May import: the core and the variant contract (``suite.variants``, ``variants.base``,
``variants.rmsnorm``); never a variant plugin, never ``sweep``/``measure``/``report``.
"""
