"""Weight and gradient histograms in TensorBoard's HISTOGRAMS (and DISTRIBUTIONS) tab."""

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from src.callbacks.watched import logging_step, summary_writer


class ParameterHistograms(Callback):
    """Every `every_n_steps` optimizer steps, one histogram per parameter tensor of its weights
    (`weights/<name>`) and of its gradient before clipping (`gradients/<name>`).

    Off with `every_n_steps=None` (the default): histograms of every tensor slow training and grow the
    event files quickly; switch them on for a diagnosis, with a large N.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = every_n_steps

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.every_n_steps or trainer.global_step % self.every_n_steps or not trainer.is_global_zero:
            return
        writer = summary_writer(trainer)
        if writer is None:
            return
        step = logging_step(trainer)
        for name, param in pl_module.net.named_parameters():
            writer.add_histogram(f"weights/{name}", param.detach(), step)
            if param.grad is not None:
                writer.add_histogram(f"gradients/{name}", param.grad, step)
