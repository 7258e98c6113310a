"""Training speed, measured two ways over the same batches, and training for a wall-clock budget.

* `raw_throughput`: a plain PyTorch loop over the training DataLoader: the network, the loss
  (summed token NLL / target tokens), backward, gradient-norm clipping and the optimizer step: the work
  Lightning does per step, without Lightning.
* `lightning_throughput`: `Trainer.fit` on the `TranslationModule`, with the trainer, callbacks and
  loggers of the training config (as `python -m src.train` builds them) minus validation and checkpoints.

Both count real target tokens (<eos> included, padding excluded) over `steps` batches after `warmup`
batches; the difference between the two is Lightning's per-step overhead.
"""

import itertools
import time
from dataclasses import dataclass
from datetime import timedelta

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, open_dict

from src.callbacks.throughput import target_tokens
from src.config import instantiate_each, to_plain
from src.data.batch import Batch
from src.data.datamodule import TranslationDataModule
from src.lit_module import TranslationModule
from src.losses import token_cross_entropy

# callbacks that need validation or write checkpoints: a speed measurement runs neither
NO_VALIDATION_CALLBACKS = ("model_checkpoint", "last_checkpoint", "early_stopping")


@dataclass
class Throughput:
    steps: int
    seconds: float
    target_tokens: int
    sentences: int

    @property
    def tokens_per_s(self) -> float:
        return self.target_tokens / self.seconds if self.seconds > 0 else 0.0


def build_module(cfg: DictConfig, datamodule: TranslationDataModule, seed: int) -> TranslationModule:
    """The `TranslationModule` of a composed training config, seeded."""
    torch.manual_seed(seed)
    module = instantiate(cfg.model, codec=datamodule.codec)
    module.run_config = to_plain(cfg)
    return module


def raw_throughput(
    module: TranslationModule,
    datamodule: TranslationDataModule,
    warmup: int,
    steps: int,
    clip: float,
    precision: str,
) -> Throughput:
    """Train `warmup + steps` batches in a plain loop; time the last `steps` (data loading included)."""
    net = module.net.train()
    optimizer = _optimizer(module)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.startswith("bf16"))
    start, tokens, sentences = 0.0, 0, 0
    batches = itertools.islice(datamodule.train_dataloader(), warmup + steps)
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        with autocast:
            logits, _ = net(batch.src, batch.src_len, batch.tgt_in)
            n_tokens = target_tokens(batch)
            loss = (
                token_cross_entropy(logits, batch.tgt_out, net.pad_id, module.label_smoothing)[0] / n_tokens
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
        if i >= warmup:
            tokens, sentences = tokens + n_tokens, sentences + len(batch)
    return Throughput(steps, time.perf_counter() - start, tokens, sentences)


def _optimizer(module: TranslationModule) -> torch.optim.Optimizer:
    """The optimizer the module configures for Lightning."""
    configured = module.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


class StepTimer(Callback):
    """Times Lightning's training batches after the first `warmup` of the run (from the end of batch
    warmup - 1, so that the next batch's loading is inside the window, as in `raw_throughput`). Batches
    are counted over the whole run: `batch_idx` starts again at 0 every epoch."""

    def __init__(self, warmup: int) -> None:
        self.warmup = max(1, warmup)
        self.start = self.end = 0.0
        self.batches = self.steps = self.tokens = self.sentences = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module, outputs, batch: Batch, batch_idx: int
    ) -> None:
        self.end = time.perf_counter()
        self.batches += 1
        if self.batches == self.warmup:
            self.start = self.end
        elif self.batches > self.warmup:
            self.steps += 1
            self.tokens += target_tokens(batch)
            self.sentences += len(batch)

    def result(self) -> Throughput:
        return Throughput(self.steps, self.end - self.start, self.tokens, self.sentences)


def lightning_trainer(cfg: DictConfig, callbacks: list[Callback], **overrides) -> L.Trainer:
    """The trainer `python -m src.train` builds from `cfg`, without validation or checkpoints."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for key in NO_VALIDATION_CALLBACKS:
            (cfg.get("callbacks") or {}).pop(key, None)
    return instantiate(
        cfg.trainer,
        callbacks=[*callbacks, *instantiate_each(cfg.get("callbacks"))],
        logger=instantiate_each(cfg.get("logger")),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        **overrides,
    )


def lightning_throughput(
    cfg: DictConfig, module: TranslationModule, datamodule: TranslationDataModule, warmup: int, steps: int
) -> Throughput:
    """`Trainer.fit` for `warmup + steps` batches; times the last `steps`."""
    timer = StepTimer(warmup)
    trainer = lightning_trainer(cfg, [timer], max_steps=timer.warmup + steps, max_epochs=-1, max_time=None)
    trainer.fit(module, datamodule=datamodule)
    return timer.result()


def train_until(
    cfg: DictConfig, module: TranslationModule, datamodule: TranslationDataModule, deadline: float
) -> Throughput:
    """Train with Lightning until `deadline` (a `time.perf_counter()` value); returns the speed over all
    batches but the first."""
    timer = StepTimer(warmup=1)
    seconds = max(0.0, deadline - time.perf_counter())
    trainer = lightning_trainer(
        cfg, [timer], max_time=timedelta(seconds=seconds), min_epochs=0, max_epochs=-1, max_steps=-1
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.result()
