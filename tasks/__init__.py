"""Task plugins: one file per task (``imagenet.py``, ...), each registering a ``Task`` subclass."""
from __future__ import annotations

from suite.registry import Registry

TASKS = Registry("task", "tasks", "normbench.tasks")
register_task = TASKS.register
