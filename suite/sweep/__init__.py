"""Running a sweep: configuration, the cell's life (train, evaluate, deploy), launching.

``options`` declares every option of the sweep once (five sections: grid, training,
measurement, launch, output; plugins may register more), from which ``config`` builds the
``RunConfig`` and each cell's ``CellSpec``; ``identity`` gives a cell its ``config_id``; ``runner`` walks the
(task, seed) groups and hands their training cells and their measurement to an executor
(``executors``: this machine, or SLURM jobs through submitit), which starts the cell, timing and
memory workers through ``suite.launch`` (inline, in a subprocess or under torchrun); ``cell`` and
``train`` are what runs inside a cell;
``distributed`` is the DDP glue; ``shard`` deals groups to ``--shard I/N`` and ``merge`` puts the
shards' stores back together; ``record`` turns a cell's outcome into its row (``report.rows.build_row``).
May import: the core (``suite.errors``, ``registry``, ``jsonio``, ``env``, ``task``),
``variants``, ``models``, ``measure``, ``report``. Not ``cli``, ``regression`` or ``bench``.
"""
