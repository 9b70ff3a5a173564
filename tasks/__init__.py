"""Task plugins: one file per task (``imagenet.py``, ...), each registering a ``suite.task.Task`` subclass."""
from __future__ import annotations

from suite.task import TASKS, register_task

__all__ = ["TASKS", "register_task"]
