"""The run's configuration in TensorBoard's HPARAMS tab, beside its best BLEU and its last validation loss."""

import math

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from src.callbacks.watched import log_scalars, logging_step, writes_after_validation

BLEU_BEST, VAL_LOSS = "hp/bleu_best", "hp/val_loss"


class HyperparametersWithMetrics(Callback):
    """At fit start, give every TensorBoard logger the resolved Hydra config (`module.run_config`,
    flattened by the logger into `model/net/embedding_size`, ...) with the metric tags `hp/bleu_best`
    and `hp/val_loss`; after every validation, log those tags, which the HPARAMS table shows (the
    latest value of each), so runs can be compared side by side, sorted by best BLEU.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # NaN until the first validation: nothing has been measured yet
        metrics = {BLEU_BEST: math.nan, VAL_LOSS: math.nan}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(pl_module.run_config, metrics, step=logging_step(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not writes_after_validation(trainer) or "val/loss" not in trainer.callback_metrics:
            return
        metrics = {BLEU_BEST: pl_module.best_bleu, VAL_LOSS: trainer.callback_metrics["val/loss"].item()}
        log_scalars(trainer, metrics)
