"""What every command-line entry point shares: user errors end in a clear message, not a traceback."""

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from src.errors import UserError

log = logging.getLogger("seq2seq-lab")

T = TypeVar("T")


def user_errors_exit(fn: Callable[..., T]) -> Callable[..., T]:
    """Run `fn`; a `UserError` is logged (console and the run's log file) and exits with status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            log.error("%s", err)
            sys.exit(2)

    return wrapper
