"""The results site (``run_suite.py publish``): static pages built from runs and history stores.

``build`` loads the inputs and writes the pages from the Jinja2 templates in ``templates/`` with the
script and stylesheet in ``assets/``; ``history`` replays each night's calls; ``charts`` draws a cell's
history; ``feed`` writes the Atom feed of regressions.
May import: the core, ``measure``, ``report`` and ``regression`` (the leaderboard's sections and the
nightly's judge, never a copy of them). Not ``sweep``, ``bench`` or ``cli``.
"""
