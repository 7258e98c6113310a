"""`last.ckpt`: the latest state of a run, kept current through training and through interruptions."""

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.errors import ConfigError

log = logging.getLogger("seq2seq-lab")


class LastCheckpoint(Checkpoint):
    """Keeps `<dirpath>/<filename>.ckpt` the latest state of the run, to resume from with `ckpt_path=`.

    Written every `every_n_train_steps` optimizer steps (null: only at the moments below), after every
    validation, at the end of training, and when the run is interrupted:

    * SIGTERM (`kill`, `scancel`, a SLURM pre-emption): training stops at the end of the current training
      batch (during a validation: of the next one), on every DDP rank at the same batch; the checkpoint is
      written and the run exits with status 143 (128 + SIGTERM; Lightning's would be 0), so that a scheduler
      sees a job that did not finish. A validation due after that batch is skipped; the resumed run goes on
      with the next training batch.
    * Ctrl-C (SIGINT): handled as SIGTERM, exit status 130 (128 + SIGINT). A second Ctrl-C stops at once,
      without a checkpoint.

    A run killed outright (SIGKILL, out of memory, power loss) loses the steps since the last write. Files go
    through the trainer's checkpoint IO, which writes them atomically (`src.checkpoint.AtomicCheckpointIO`).
    """

    def __init__(self, dirpath: str, filename: str = "last", every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and not (
            isinstance(every_n_train_steps, int) and every_n_train_steps >= 1
        ):
            raise ConfigError(
                f"callbacks.last_checkpoint.every_n_train_steps={every_n_train_steps!r} is invalid: it must be an "
                "integer >= 1, or null to write last.ckpt only after validations and at the end."
            )
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every_n_train_steps = every_n_train_steps
        self._saved_at_step: int | None = None
        self._stop: signal.Signals | None = None  # the signal that asked training to stop
        self._previous_handlers: dict[int, Any] = {}
        self._is_global_zero = True

    # ------------------------------------------------------------------------------ writing
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # any rank's signal stops every rank, here, at the same batch
        if trainer.strategy.reduce_boolean_decision(
            self._stop is not None or trainer.received_sigterm, all=False
        ):
            self._save(trainer)
            raise SIGTERMException
        step = trainer.global_step
        # once per step: with gradient accumulation the next batches of the window have the same global_step
        if self.every_n_train_steps and step % self.every_n_train_steps == 0 and step != self._saved_at_step:
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        if self._saved_at_step != trainer.global_step:
            self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at_step = trainer.global_step

    # ------------------------------------------------------------------------- interrupts
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take SIGINT and SIGTERM over from Lightning for the training loop.

        Lightning's SIGTERM handler runs a collective (a broadcast) inside the signal handler, which hangs a
        DDP run whose ranks are in another collective at that moment, and Lightning then stops each rank where
        it sees the signal. These handlers only note the signal; `on_train_batch_end` acts on it.
        """
        self._stop = None
        self._is_global_zero = trainer.is_global_zero
        if threading.current_thread() is threading.main_thread():  # only there can signal handlers be set
            self._previous_handlers = {
                signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
            }

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self._stop is None
        self._stop = signal.Signals(signum)
        if signum == signal.SIGINT:  # a second Ctrl-C raises KeyboardInterrupt at once
            signal.signal(
                signal.SIGINT, self._previous_handlers.get(signal.SIGINT, signal.default_int_handler)
            )
        if first and self._is_global_zero:
            name = "Ctrl-C" if signum == signal.SIGINT else self._stop.name
            again = " (press Ctrl-C again to stop now, without saving)" if signum == signal.SIGINT else ""
            log.warning("%s: stopping at the end of this batch and saving %s%s.", name, self.path, again)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
        if not isinstance(exception, SIGTERMException):  # a crash, or a second Ctrl-C: maybe half-way a step
            return
        signum = self._stop or signal.SIGTERM
        exception.code = 128 + signum  # Lightning re-raises this SystemExit, whose status was 0
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return
        if self._saved_at_step != trainer.global_step:  # stopped by Lightning, whose handlers were in place
            self._save(trainer)
        if trainer.is_global_zero:
            log.warning(
                "%s: training stopped at step %d. To resume, run the same command with ckpt_path=%s",
                "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name,
                trainer.global_step,
                self.path,
            )
