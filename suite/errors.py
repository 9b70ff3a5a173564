"""Exceptions that the command line turns into one-line messages."""
from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: printed as one line on stderr, exit status 2, no traceback."""


class DataError(UsageError):
    """A dataset is missing or not in the expected layout."""


class Diverged(Exception):
    """Training produced a non-finite loss; the cell is recorded as ``diverged``."""


class NotApplicable(Exception):
    """A variant does not apply to a task/model; the cell is recorded as ``not-applicable``."""
