"""Regression verdicts: is tonight's run worse than the baseline or the history?

``verdicts`` holds the statistics (rules per metric, the judge); ``compare`` turns rows
into a verdict per cell and metric against a run or the history; ``history`` is the
store of nights and the step search over it; ``nightly`` is what runs after a sweep or merge.
May import: the core, ``measure`` and ``report``. Not ``sweep``, ``bench`` or ``cli``.
"""
