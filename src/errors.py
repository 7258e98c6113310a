"""Errors a user can act on.

Entry points catch `UserError`, print its message (which names the file, line or option and the fix)
without a traceback, and exit with status 2.
"""


class UserError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ConfigError(UserError):
    """An option is unknown, out of range, or incompatible with another option."""


class DataError(UserError):
    """A corpus file is missing, unreadable or malformed."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or does not fit the data or the code."""


class TrainingError(UserError):
    """Training diverged (a NaN or infinite loss); the run stops and keeps its last good checkpoints."""
