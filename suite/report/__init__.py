"""What is kept and shown: the row schema, the results store, tables, leaderboard, plots.

``rows`` is the published row contract (schema version, the one builder ``build_row``, the
typed reader ``Row`` every report goes through, migration);
``store`` appends rows atomically and reads them back; ``leaderboard`` and ``plots`` are
generated from rows; ``fingerprint`` says which rows may be compared.
May import: the core and ``measure`` (ratio statistics, GPU state flags). Not ``sweep``,
``regression``, ``bench`` or ``cli``.
"""
