"""What is kept and shown: the row schema, the results store, tables, leaderboard, plots, merge.

``rows`` is the published row contract (schema version, typed accessors, migration);
``store`` appends rows atomically and reads them back; ``leaderboard`` and ``plots`` are
generated from rows; ``fingerprint`` says which rows may be compared; ``merge`` combines
the stores of ``--shard`` runs.
May import: the core and ``measure`` (ratio statistics, GPU state flags). Not ``sweep``,
``regression``, ``bench`` or ``cli``.
"""
