"""How models are measured: interleaved timing, memory, the environment it ran in.

``interleave`` is the timing algorithm (warm-up, interleaved rounds, paired ratios with
bootstrap intervals); ``inputs`` makes timing inputs and counts FLOPs; ``timing_worker``
and ``memory_worker`` are the processes that time a group of deployed models and probe one
model's peak memory, asked by the typed messages of ``jobs`` (``TimingJob``, ``MemoryJob``,
``TimingResult``); ``env`` records provenance; ``gpu`` reads NVML; ``alloc`` steadies glibc malloc.
May import: the core, ``variants`` and ``models``. Not ``sweep``, ``report``, ``regression``, ``cli``.
"""
