"""Test-only runtime plugin, loaded through NORMBENCH_PLUGINS: eager, but it says its builds leave a disk cache."""
from __future__ import annotations

from suite.measure.runtimes import register_runtime
from suite.measure.runtimes.eager import Eager


@register_runtime("cachedeager")
class CachedEager(Eager):
    """Test plugin: eager execution that claims a build cache (to exercise deploy-bench --build-jobs)."""

    build_cache = True
