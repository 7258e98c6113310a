"""Gradient norms in TensorBoard's SCALARS tab: the total L2 norm before clipping, and per model part."""

from collections import defaultdict

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from src.callbacks.watched import log_scalars
from src.models.attention import Attention

# top-level children of `Seq2Seq` -> the part they belong to (the decoder's attention is found by type)
PARTS = {
    "src_embedding": "embeddings",
    "tgt_embedding": "embeddings",
    "encoder": "encoder",
    "decoder": "decoder",
    "output_layer": "output_layer",
}


class GradientNorms(Callback):
    """Every `every_n_steps` optimizer steps, log `grad_norm/total` and `grad_norm/<part>` for the
    embeddings, encoder, attention, decoder (without its attention) and output layer.

    Lightning calls `on_before_optimizer_step` after the backward pass(es) of the step and after AMP
    unscaling, but before gradient clipping: these are the norms that `trainer.gradient_clip_val` clips.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps
        self._parts: dict[str, list[nn.Parameter]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = parameter_parts(pl_module.net)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # gradients are identical on every rank once DDP has reduced them
        if not trainer.is_global_zero or trainer.global_step % self.every_n_steps:
            return
        norms = {
            part: norm for part, params in self._parts.items() if (norm := _grad_norm(params)) is not None
        }
        if norms:
            norms["total"] = torch.nn.utils.get_total_norm(list(norms.values()))  # the norm of the part norms
            log_scalars(trainer, {f"grad_norm/{part}": norm.item() for part, norm in norms.items()})


def parameter_parts(net: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters of a `Seq2Seq` grouped by part: embeddings, encoder, attention, decoder,
    output_layer (a tied output layer keeps only its bias: the shared matrix counts as embedding)."""
    attention = {
        id(p) for module in net.modules() if isinstance(module, Attention) for p in module.parameters()
    }
    parts: dict[str, list[nn.Parameter]] = defaultdict(list)
    for name, param in net.named_parameters():
        if param.requires_grad:
            child = name.split(".")[0]
            parts["attention" if id(param) in attention else PARTS.get(child, child)].append(param)
    return dict(parts)


def _grad_norm(params: list[nn.Parameter]) -> torch.Tensor | None:
    """L2 norm of the parameters' gradients seen as one vector (as `clip_grad_norm_` computes it); None
    when none of them has a gradient."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None
