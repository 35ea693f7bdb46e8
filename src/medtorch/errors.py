"""Project error classes.

User mistakes (bad files, bad config keys, bad values) raise a :class:`MedtorchError`
subclass. The CLI prints its message as one line and exits with code 2. Messages follow
one wording: ``expected <what>, got <value> in <file/key>; <how to fix>``.
``assert`` is kept for internal invariants only.
"""

from __future__ import annotations


class MedtorchError(ValueError):
    """Base class of every user-facing error (a ``ValueError``)."""


class ConfigError(MedtorchError):
    """A recipe, override or argument is invalid."""


class DataError(MedtorchError):
    """A data file is missing, malformed or inconsistent."""


class SplitError(MedtorchError):
    """A split is impossible (empty partition) or leaks groups between partitions."""


class ModelError(MedtorchError):
    """Unknown model name or invalid model arguments."""


class RecordError(DataError):
    """A physiological record (e.g. WFDB) is unreadable or inconsistent."""


def fmt(expected: str, got: object, where: str, fix: str) -> str:
    """Format the project's one-line error wording.

    >>> fmt("a positive int", -1, "trainer.batch_size", "set it to e.g. 64")
    'expected a positive int, got -1 in trainer.batch_size; set it to e.g. 64'
    """
    return f"expected {expected}, got {got!r} in {where}; {fix}"
