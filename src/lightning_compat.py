"""The few private Lightning APIs this project needs, in one place, each with why no public one serves.

When a Lightning upgrade renames one of them, this module is the only one to change.
"""

from typing import Any, get_args

from lightning.fabric.connector import _PRECISION_INPUT
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher


def precision_choices() -> tuple[str, ...]:
    """Every `trainer.precision` value Lightning accepts ("32-true", "bf16-mixed", "16", ...), in its order.

    Private: Lightning publishes the accepted values only as the `_PRECISION_INPUT` type alias; checking
    the option against it lets the start-up check name the valid values before any data is read.
    """
    return tuple(dict.fromkeys(str(p) for literal in get_args(_PRECISION_INPUT) for p in get_args(literal)))


def starts_processes_by_rerunning_the_command(launcher: Any) -> bool:
    """Whether DDP's extra processes would be started by re-running this process's command line.

    Private: `_SubprocessScriptLauncher` is the launcher that does so, and no public attribute says it.
    Inside a `-m` sweep, re-running the command line would re-run the whole sweep.
    """
    return (
        isinstance(launcher, _SubprocessScriptLauncher)
        and launcher.num_processes > 1
        and not launcher.cluster_environment.creates_processes_externally
    )


def batches_that_stepped(trainer: Any) -> int:
    """Training batches after which the optimizer stepped, over all epochs (the step logged values use).

    Private: `trainer.global_step` counts optimizer steps of every optimizer and `batch_idx` restarts every
    epoch; Lightning's loggers use this counter, and callbacks that log beside them should too.
    """
    return trainer.fit_loop.epoch_loop._batches_that_stepped
