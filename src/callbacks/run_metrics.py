"""A run's comparable columns and metrics (`src.run_columns`), kept up to date while it trains and tests."""

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from src.callbacks.throughput import target_tokens
from src.run_columns import METRICS, Column, current_run_columns
from src.run_record import epochs_trained


class RunMetrics(Callback):
    """Holds `columns` (from fit start) and `metrics` (`src.run_columns.METRICS`, None until measured):
    what `src.train` writes to summary.json and `HyperparametersWithMetrics` shows in HPARAMS.

    The best validation is the one with the highest `val/bleu` (the one `best.ckpt` holds with the default
    `model_checkpoint`); the test metrics are those of the test that follows training. Training time and
    tokens are carried across a resume in the checkpoints (`state_dict`). Under DDP every process counts its
    own target tokens; they are summed after every validation and at the end of training.
    """

    def __init__(self) -> None:
        self.columns: dict[str, Column] = {}
        self.metrics: dict[str, float | int | None] = dict.fromkeys(METRICS)
        self._local_tokens = 0  # this process's training target tokens since this fit began
        self._tokens_before = 0.0  # all processes', restored from the checkpoint of a resumed run
        self._train_time_before = self._validation_time = 0.0  # seconds (restored too)
        self._summed_tokens: float | None = None  # all processes' since this fit began, as of the last sum
        self._world_size = 1
        self._train_started: float | None = None
        self._validation_started: float | None = None
        self._restored: dict[str, Any] | None = None  # a checkpoint's state, until fit start takes it

    @property
    def state_key(self) -> str:
        return "RunMetrics"  # the same for subclasses: a resumed run may switch HPARAMS logging on or off

    def state_dict(self) -> dict[str, Any]:
        return {
            "metrics": dict(self.metrics),
            "tokens": self._all_tokens(),
            "train_time_s": self._train_time(),
            "validation_time_s": self._validation_time,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning also loads callback states for `trainer.test(ckpt_path=best)`: only a resumed fit takes them
        self._restored = state_dict

    def _resume(self, state_dict: dict[str, Any]) -> None:
        self.metrics.update({k: v for k, v in state_dict.get("metrics", {}).items() if k in self.metrics})
        self._tokens_before = float(state_dict.get("tokens", 0.0))
        self._train_time_before = float(state_dict.get("train_time_s", 0.0))
        self._validation_time = float(state_dict.get("validation_time_s", 0.0))

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored is not None:  # the checkpoint of a resumed run, loaded just before this hook
            self._resume(self._restored)
            self._restored = None
        num_parameters = sum(p.numel() for p in pl_module.parameters())
        self.columns = current_run_columns(getattr(pl_module, "run_config", {}), num_parameters)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_started = time.monotonic()
        self._world_size = trainer.world_size

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._local_tokens += target_tokens(batch)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._within_training(trainer):
            self._validation_started = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._within_training(trainer):
            return
        if self._validation_started is not None:
            self._validation_time += time.monotonic() - self._validation_started
            self._validation_started = None
        found = trainer.callback_metrics
        bleu = _number(found.get("val/bleu"))
        best = self.metrics["best_val_bleu"]
        if bleu is not None and (
            best is None or bleu > best
        ):  # as ModelCheckpoint(mode="max"): ties keep the first
            self.metrics.update(
                best_val_bleu=bleu,
                best_val_chrf=_number(found.get("val/chrf")),
                best_val_loss=_number(found.get("val/loss")),
                best_step=trainer.global_step,
                best_epoch=epochs_trained(trainer),
            )
        self._update_speed(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update_speed(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restored = None  # the best checkpoint's state, from before training ended: not this run's now

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        found = trainer.callback_metrics
        self.metrics.update(
            test_bleu=_number(found.get("test/bleu")), test_chrf=_number(found.get("test/chrf"))
        )

    # ---------------------------------------------------------------- helpers
    def _within_training(self, trainer: L.Trainer) -> bool:
        """A validation of fit, not Lightning's sanity check nor a `trainer.validate` call."""
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def _update_speed(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Train time and tokens/s; every process must call it (the token counts are summed over them)."""
        if self._train_started is None:
            return
        local = torch.tensor(float(self._local_tokens), device=pl_module.device)
        self._summed_tokens = float(trainer.strategy.reduce(local, reduce_op="sum"))
        train_time = self._train_time()
        self.metrics["train_time_s"] = round(train_time, 1)
        training_only = train_time - self._validation_time
        per_second = self._all_tokens() / training_only if training_only > 0 else None
        self.metrics["train_tokens_per_s"] = None if per_second is None else round(per_second, 1)

    def _all_tokens(self) -> float:
        """All processes' tokens: one process's count, or under DDP the last sum (estimated before it)."""
        if self._world_size == 1:
            return self._tokens_before + self._local_tokens
        if self._summed_tokens is None:
            return self._tokens_before + self._local_tokens * self._world_size
        return self._tokens_before + self._summed_tokens

    def _train_time(self) -> float:
        running = time.monotonic() - self._train_started if self._train_started is not None else 0.0
        return self._train_time_before + running


def run_metrics_of(callbacks: list[Callback]) -> RunMetrics:
    """The `RunMetrics` among `callbacks` (the HPARAMS callback is one); one is added when none is, so that
    summary.json has the run's columns and metrics whichever callbacks are switched off."""
    found = next((c for c in callbacks if isinstance(c, RunMetrics)), None)
    if found is None:
        found = RunMetrics()
        callbacks.append(found)
    return found


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
