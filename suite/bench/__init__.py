"""Stand-alone benchmarks of deployed models: calibration, deploy-bench, attention scaling.

They share one setup (``common``: threads, allocator, device, provenance, report folder)
and the interleaved timer of ``suite.measure``; deploy-bench also writes rows and can be
judged against a baseline or the history like a sweep.
May import: the core, ``variants``, ``models``, ``measure``, ``report``, ``regression``. Not
``sweep`` or ``cli``.
"""
