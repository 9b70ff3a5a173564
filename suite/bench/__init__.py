"""Stand-alone benchmarks of deployed models: calibration, deploy-bench, attention scaling.

They share one setup (``common``: threads, allocator, device, provenance, report folder)
and the interleaved timer of ``suite.measure``.
May import: the core, ``variants``, ``models``, ``measure``. Not ``sweep``, ``report``,
``regression`` or ``cli``.
"""
