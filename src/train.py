"""Train a model: `python -m src.train [group=option ...] [key=value ...]` (see conf/train.yaml).

Reads like a table of contents: build the data, the model, the callbacks and loggers, the trainer; fit;
test; print where everything is; return the metric a sweeper optimises.
"""

import logging
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.callbacks.run_metrics import run_metrics_of
from src.checkpoint import read_checkpoint
from src.config import instantiate_each, register_resolvers, set_matmul_precision, to_plain
from src.data.codec import Codec
from src.entry import entry_point, in_sweep
from src.errors import CheckpointError, ConfigError
from src.hardware import machine
from src.launchers import fit_to_launcher, set_job_threads
from src.lightning_compat import starts_processes_by_rerunning_the_command
from src.run_record import RunSummary
from src.schema import validate_train_config

log = logging.getLogger("seq2seq-lab")
register_resolvers()


def train(cfg: DictConfig) -> float | None:
    started = time.monotonic()
    validate_train_config(cfg)  # a bad option fails now, before the data is read
    set_matmul_precision(cfg)
    fit_to_launcher(cfg)
    set_job_threads(cfg)
    trained_on = machine()  # the date, CPU, threads and commit, for summary.json
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(HydraConfig.get().runtime.output_dir)

    log.info("Reading the data <%s>", cfg.data._target_)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    if cfg.get("ckpt_path"):
        check_resumable(cfg.ckpt_path, datamodule.codec)

    log.info("Building the model <%s>", cfg.model.net._target_)
    model = instantiate(cfg.model, codec=datamodule.codec)
    model.run_config = to_plain(cfg)
    callbacks = instantiate_each(cfg.get("callbacks"))
    run_metrics = run_metrics_of(callbacks)  # the run's columns and metrics, for summary.json and HPARAMS
    loggers = instantiate_each(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    check_launch(trainer)
    if trainer.is_global_zero:  # under DDP every process runs this function: one writes the run's files
        datamodule.save(output_dir)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test") and datamodule.has_test and not trainer.fast_dev_run:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)

    metric = trainer.callback_metrics.get(cfg.optimized_metric)
    if cfg.optimized_metric == "val/bleu" and model.best_bleu > float("-inf"):
        metric = model.best_bleu  # a sweeper should rank runs by their best epoch, not their last
    if trainer.is_global_zero:
        summarize(trainer, output_dir, model.best_bleu)
        # summary.json: what src.report reads
        summary = RunSummary.from_trainer(
            trainer, model, time.monotonic() - started, run_metrics.metrics, run_metrics.columns, trained_on
        )
        summary.write(output_dir)
    return None if metric is None else float(metric)


def check_launch(trainer: L.Trainer) -> None:
    """Refuse a sweep job whose DDP processes Lightning would start by re-running the command line: each of
    them would re-run the whole sweep."""
    launcher = trainer.strategy.launcher
    if in_sweep() and starts_processes_by_rerunning_the_command(launcher):
        raise ConfigError(
            f"trainer.devices={launcher.num_processes} with DDP cannot run inside a -m sweep on this launcher: "
            "Lightning starts the extra processes by re-running the command line, which would re-run the "
            "whole sweep. Run each configuration as its own command (without -m), or sweep with "
            "hydra/launcher=submitit_slurm and hydra.launcher.tasks_per_node equal to trainer.devices, so "
            "that SLURM starts the processes."
        )


def check_resumable(ckpt_path: str, codec: Codec) -> None:
    """Refuse to resume from a checkpoint whose vocabularies differ from those of the data."""
    saved = read_checkpoint(ckpt_path)["seq2seq_lab"]["codec"]
    current = codec.state_dict()
    for side in ("src_vocab", "tgt_vocab"):
        if saved.get(side) != current.get(side):
            raise CheckpointError(
                f"Cannot resume from {ckpt_path}: its {side.replace('_', ' ')}ulary differs from the one built "
                "from the current data (different corpus, tokenizer or data.*_min_freq/max_size?). Resume "
                "with the data settings of the original run (see its .hydra/config.yaml)."
            )


def summarize(trainer: L.Trainer, output_dir: Path, best_bleu: float) -> None:
    lines = [f"Run folder: {output_dir}"]
    if best_bleu > float("-inf"):
        lines.append(f"Best validation BLEU: {best_bleu:.2f}")
    if trainer.checkpoint_callback and trainer.checkpoint_callback.dirpath:
        lines.append(f"Checkpoints: {trainer.checkpoint_callback.dirpath} (best.ckpt, last.ckpt)")
    if trainer.logger is not None and trainer.logger.log_dir:
        lines.append(f"TensorBoard: tensorboard --logdir {trainer.logger.log_dir}")
    lines.append(f"Config: {output_dir / '.hydra' / 'config.yaml'}")
    log.info("Done.\n  %s", "\n  ".join(lines))


@entry_point("train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
