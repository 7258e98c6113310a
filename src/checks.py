"""The value checks that constructors and the start-up check share, so that every option is judged alike."""

from typing import Any


def is_int(value: Any, minimum: int | None = None) -> bool:
    """An integer (a bool is not one, though Python says so), at least `minimum` when given. A number typed
    on the command line that is not one arrives as a string, and fails here."""
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)
