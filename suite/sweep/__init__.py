"""Running a sweep: configuration, the cell's life (train, evaluate, deploy), launching.

``config`` holds the keyword-only ``RunConfig`` and ``CellSpec``; ``runner`` walks the
(task, seed) groups and starts cells, timing and memory workers through ``suite.launch``
(inline, in a subprocess or under torchrun); ``cell`` and ``train`` are what runs inside a cell;
``distributed`` is the DDP glue; ``shard`` deals groups to ``--shard I/N``.
May import: the core (``suite.errors``, ``registry``, ``jsonio``, ``env``, ``task``),
``variants``, ``models``, ``measure``, ``report``. Not ``cli``, ``regression`` or ``bench``.
"""
