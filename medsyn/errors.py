"""User-facing errors.

Every problem a user can fix (a missing file, a bad image, a wrong option) is raised as a
:class:`MedsynError` whose message says what is wrong, where, and what to do. The CLI prints the
message and exits non-zero without a traceback; Python callers can catch it like any exception.
"""

from __future__ import annotations


class MedsynError(Exception):
    """A problem with the user's input or environment, explained in the message.

    The CLI prints the message as a one-line error and exits with ``exit_code``.
    """

    exit_code = 1

    @property
    def message(self) -> str:
        return str(self)


class DataError(MedsynError):
    """A dataset is missing, unreadable or inconsistent."""


class CheckpointError(MedsynError):
    """A checkpoint file is missing, corrupt, foreign or does not match what it is used with."""


class ConfigError(MedsynError):
    """An option or configuration value is invalid."""
