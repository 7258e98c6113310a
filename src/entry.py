"""What every command-line entry point shares: user errors end in a clear message, not a traceback, and
a failing job of a sweep is recorded in its folder without stopping the sweep."""

import functools
import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from src.config import PROJECT_ROOT
from src.errors import UserError
from src.run_record import ERROR_FILE, write_failure

log = logging.getLogger("seq2seq-lab")

T = TypeVar("T")


# Library warnings that are not the user's to act on, silenced in every entry point:
LIBRARY_WARNINGS = (
    # Lightning 2.6's own use of a deprecated torch API, printed at every epoch
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # our length-bucketed batches are built in the main process on purpose (data.num_workers, default 0)
    r".*does not have many workers.*",
)


def filter_library_warnings() -> None:
    for message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], T]], Callable[[], T]]:
    """The decorator of every command's `main(cfg)`: `@entry_point("train")` composes `conf/train.yaml`
    with the command line (`hydra.main`), after `check_command_line` has checked the command line, and runs
    `main` under `user_errors_exit` (a user's mistake ends in its message, a failing sweep job is recorded)."""

    def decorate(main: Callable[[DictConfig], T]) -> Callable[[], T]:
        hydra_main = hydra.main(
            version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name=config_name
        )
        return check_command_line(hydra_main(user_errors_exit(main)))

    return decorate


def check_command_line(main: Callable[[], T]) -> Callable[[], T]:
    """Check the command line's overrides before `hydra.main` reads them (`main` is the function that
    `@hydra.main` returned), for the mistakes that Hydra answers with a traceback of its own internals.

    One today: setting a config group to null (`logger=null`, `hydra/launcher=null`), which Hydra refuses
    with "Config group override must be a string or a list"; the way to drop a group is `~group`.
    Anything the parser cannot read is left to Hydra, whose own message for it is readable.
    """

    @functools.wraps(main)
    def wrapper() -> T:
        message = null_group_override(sys.argv[1:])
        if message is not None:
            print(f"Error: {message}", file=sys.stderr)
            sys.exit(2)
        return main()

    return wrapper


def null_group_override(argv: list[str]) -> str | None:
    """The message for the first `group=null` override of `argv` (a config group of `conf/` or Hydra's
    own, like `hydra/launcher`), or None when there is none."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args, _ = get_args_parser().parse_known_args(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException:
        return None
    for override in overrides:
        group = override.key_or_group
        is_group = "/" in group or override.package is not None or (PROJECT_ROOT / "conf" / group).is_dir()
        if is_group and not override.is_delete() and override.value() is None:
            return (
                f"{override.input_line}: a config group cannot be set to null. To run without it, remove it "
                f"with ~{group}; to choose another, name one of its options ({group}=<option>)."
            )
    return None


def user_errors_exit(fn: Callable[..., T]) -> Callable[..., T]:
    """Run `fn` (with `LIBRARY_WARNINGS` silenced); a `UserError` is logged (console and the run's log file) and exits with status 2.

    A `UserError` raised by a constructor that `hydra.utils.instantiate` called arrives wrapped in an
    `InstantiationException`; it is unwrapped, so it too ends in its own message, not a traceback.
    In a sweep (`-m`) a failing job is recorded instead, and the sweep goes on (see `record_failed_job`).
    """
    fn = record_failed_job(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        filter_library_warnings()
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            log.error("%s", err)
            sys.exit(2)
        except InstantiationException as err:
            cause = user_error_cause(err)
            if cause is None:
                raise
            log.error("%s", cause)
            sys.exit(2)

    return wrapper


def user_error_cause(err: BaseException) -> UserError | None:
    """The `UserError` in `err`'s chain of causes, if any."""
    while err is not None:
        if isinstance(err, UserError):
            return err
        err = err.__cause__
    return None


def record_failed_job(fn: Callable[..., T]) -> Callable[..., T | None]:
    """In a sweep (`-m`), a job that fails is recorded in its folder and returns None: the sweep goes on.

    The folder gets `error.log` (the message of a user error, the traceback of a bug) and a `summary.json`
    with status `failed`, which `python -m src.report` shows. None rather than NaN: the Optuna sweeper
    marks a trial that returns None as failed and goes on, but crashes on a NaN. A single run is untouched.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T | None:
        started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if not in_sweep():
                raise
            cause = user_error_cause(err)
            run_dir = Path(HydraConfig.get().runtime.output_dir)
            write_failure(run_dir, cause or err, time.monotonic() - started, user_error=cause is not None)
            if cause is not None:
                log.error("This job failed: %s", cause)
            else:
                log.exception("This job failed")
            log.error("The sweep goes on; this job's error is in %s", run_dir / ERROR_FILE)
            return None

    return wrapper


def in_sweep() -> bool:
    """Whether this is a job of a Hydra multirun (`-m`: grid search, Optuna, any launcher)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
