"""A run's comparable columns and metrics in TensorBoard's HPARAMS tab (see `src.run_columns`)."""

import lightning as L
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams

from src.callbacks.run_metrics import RunMetrics
from src.callbacks.watched import log_scalars, summary_writer, writes_after_validation
from src.run_columns import METRIC_TAG, METRICS, metric_tags, swept_columns


class HyperparametersWithMetrics(RunMetrics):
    """At fit start, write the run's columns (group choices, overrides, curated settings; see
    `src.run_columns`) as its HPARAMS session, declaring the metric tags `hp/<name>` of `METRICS`
    (`hp/best_val_bleu`, `hp/best_val_chrf`, `hp/test_bleu`, `hp/train_tokens_per_s`, ...). Those are
    logged as scalars once measured (after every validation, at the end of training, after the test); the
    HPARAMS table shows the latest value of each. In a multirun, the columns the sweep varies are marked as
    differing, so that TensorBoard lists them first. summary.json holds the same columns and metrics, and
    `python -m src.report` shows them.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        writer = summary_writer(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        # torch's summaries for the plugin: the experiment (columns and metric tags), this session's values
        declared = {METRIC_TAG.format(name=name): 0.0 for name in METRICS}
        experiment, start, end = hparams(self.columns, declared)
        mark_differing(experiment, swept_columns())
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if writes_after_validation(trainer) and self._within_training(trainer):
            self._log(trainer, METRICS)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if trainer.is_global_zero:
            self._log(trainer, ("train_time_s", "train_tokens_per_s"))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_test_end(trainer, pl_module)
        if trainer.is_global_zero:
            self._log(trainer, ("test_bleu", "test_chrf"))

    def _log(self, trainer: L.Trainer, names: tuple[str, ...]) -> None:
        tagged = metric_tags({name: self.metrics[name] for name in names})
        if tagged:
            log_scalars(trainer, tagged)


def mark_differing(experiment: Summary, names: set[str]) -> None:
    """Mark the experiment's columns `names` as differing between sessions (`HParamInfo.differs`).

    TensorBoard lists the columns that differ first, the others after them, each by name, and shows the first
    five: so a grid's HPARAMS view opens on what the grid varies (`attention`, `model.optimizer.lr`).
    """
    plugin_data = experiment.value[0].metadata.plugin_data
    content = HParamsPluginData.FromString(plugin_data.content)
    for info in content.experiment.hparam_infos:
        info.differs = info.name in names
    plugin_data.content = content.SerializeToString()
