"""The LightningModule: trains a `Seq2Seq` network and scores it with corpus BLEU on validation.

What callbacks may read: `net`, `codec`, `translator`, and after every validation epoch
`validation_outputs` (sources, references and hypotheses of the validation set on this rank). The scores
are torchmetrics metrics (`src.metrics`): `val/bleu`, `val/chrf`, `val/loss`, `val/ppl`, `val/exact_match`,
`val/token_accuracy` (and `test/...`), computed over all processes without gathering any text; after testing,
`test_by_length` (the test scores per source-length bucket, `model.length_buckets`).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning import LightningModule
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor
from torchmetrics import MeanMetric

from src.checkpoint import CHECKPOINT_FORMAT
from src.checks import require, require_fraction, require_int, require_number
from src.data.batch import Batch
from src.data.codec import Codec
from src.decoding import SequenceGenerator
from src.errors import CheckpointError, ConfigError, TrainingError
from src.losses import alignment_loss, attention_entropy, coverage_loss, token_cross_entropy
from src.metrics import CorpusBLEU, CorpusChrF, ScoresByLength, SequenceAccuracy
from src.models.seq2seq import Seq2Seq
from src.schedules import TeacherForcingSchedule
from src.translator import Translator, bleu_hypothesis, bleu_reference

# what a NaN/inf training loss does: stop the run (error) or skip the batch, counted and logged (skip)
NONFINITE_LOSS_CHOICES = ("error", "skip")

log = logging.getLogger(__name__)


@dataclass
class ValidationOutputs:
    sources: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)


class TranslationModule(LightningModule):
    def __init__(
        self,
        net: Callable[..., Seq2Seq],
        codec: Codec,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/bleu",
        label_smoothing: float = 0.0,
        coverage_loss_weight: float = 0.0,
        attention_entropy_weight: float = 0.0,
        alignment_loss_weight: float = 0.0,
        alignment_head: int = 0,
        teacher_forcing: TeacherForcingSchedule | None = None,
        val_generator: SequenceGenerator | None = None,
        translator: Callable[..., Translator] | None = None,
        bleu_tokenize: str = "13a",
        nonfinite_loss: str = "error",
        length_buckets: list[int] | None = None,
    ):
        """`net` arrives as a partial (from Hydra) and is completed with the vocabulary sizes here; so does
        `translator` (the watched sentences' translations, `model.translator`), with the network, the codec and
        `val_generator`."""
        super().__init__()
        choices = ", ".join(NONFINITE_LOSS_CHOICES)
        require(
            nonfinite_loss in NONFINITE_LOSS_CHOICES,
            "model.nonfinite_loss",
            nonfinite_loss,
            f"one of {choices}",
        )
        require_fraction("model.label_smoothing", label_smoothing)
        for name, weight in (
            ("coverage_loss_weight", coverage_loss_weight),
            ("attention_entropy_weight", attention_entropy_weight),
            ("alignment_loss_weight", alignment_loss_weight),
        ):
            require_number(f"model.{name}", weight)
        require_int("model.alignment_head", alignment_head, 0)
        self.nonfinite_loss = nonfinite_loss
        self.skipped_batches = 0
        self.codec = codec
        self.net = net(src_vocab_size=len(codec.src_vocab), tgt_vocab_size=len(codec.tgt_vocab))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_monitor = scheduler_monitor
        self.label_smoothing = label_smoothing
        self.coverage_loss_weight = coverage_loss_weight
        self.attention_entropy_weight = attention_entropy_weight
        self.alignment_loss_weight, self.alignment_head = alignment_loss_weight, alignment_head
        if alignment_loss_weight and not 0 <= alignment_head < max(self.net.num_heads, 1):
            raise ConfigError(
                f"model.alignment_head={alignment_head} is out of range: the model's attention has "
                f"{self.net.num_heads} head(s) (0-based)."
            )
        if alignment_loss_weight and self.net.num_heads == 0:
            raise ConfigError(
                "model.alignment_loss_weight supervises the attention, but the model has none (attention=none)."
            )
        self.teacher_forcing = teacher_forcing or TeacherForcingSchedule()
        self.translator = (translator or Translator)(self.net, codec, val_generator or SequenceGenerator())
        self.bleu_tokenize = bleu_tokenize
        # the resolved run config as plain data, set by the entry point; stored in every checkpoint so that
        # a checkpoint alone can rebuild the model (see `src.checkpoint`)
        self.run_config: dict[str, Any] = {}
        self.validation_outputs = ValidationOutputs()
        self.best_bleu = float("-inf")
        self._eval_texts = ValidationOutputs()
        # validation and test metrics (torchmetrics: their states sum over batches and DDP processes, and
        # are not part of the checkpoint's weights); reset after every validation or test epoch
        lowercase = codec.tgt_tokenizer.lowercase
        self.eval_bleu = CorpusBLEU(bleu_tokenize, lowercase)
        self.eval_chrf = CorpusChrF(lowercase)
        self.eval_accuracy = SequenceAccuracy()
        self.eval_nll = MeanMetric()  # the token-weighted mean of the NLL (no label smoothing)
        # the test set's scores by source length (`test_by_length` after testing); null: not measured
        try:
            self.test_length_scores = (
                ScoresByLength(list(length_buckets), bleu_tokenize, lowercase)
                if length_buckets is not None
                else None
            )
        except ValueError as err:
            raise ConfigError(f"model.length_buckets={list(length_buckets)} is invalid: {err}.") from None
        self.test_by_length: list[dict[str, Any]] | None = None
        # gradient accumulation (see `_summed_loss`): the target tokens of the current window on this rank,
        # and the constant each batch's summed loss is divided by
        self._window_tokens: Tensor | int = 0
        self._loss_divisor: float | None = None

    # ----------------------------------------------------------------- loss
    def _loss(self, batch: Batch, teacher_forcing_ratio: float) -> tuple[Tensor, Tensor, Tensor]:
        """(loss per target token incl. attention terms, summed NLL without smoothing, target tokens)."""
        logits, attn_weights = self.net(batch.src, batch.src_len, batch.tgt_in, teacher_forcing_ratio)
        tgt_mask = batch.tgt_out != self.net.pad_id  # [batch, tgt_len]
        n_tokens = tgt_mask.sum()
        loss_sum, nll = token_cross_entropy(logits, batch.tgt_out, self.net.pad_id, self.label_smoothing)
        if attn_weights is not None and self.coverage_loss_weight:
            loss_sum = loss_sum + self.coverage_loss_weight * coverage_loss(attn_weights, tgt_mask)
        if attn_weights is not None and self.attention_entropy_weight:
            loss_sum = loss_sum + self.attention_entropy_weight * attention_entropy(attn_weights, tgt_mask)
        if attn_weights is not None and self.alignment_loss_weight and batch.alignment is not None:
            guided = alignment_loss(attn_weights[:, self.alignment_head], batch.alignment)
            loss_sum = loss_sum + self.alignment_loss_weight * guided
        return loss_sum / n_tokens, nll.detach(), n_tokens

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        ratio = self.teacher_forcing(self.global_step)
        loss, _, n_tokens = self._loss(batch, ratio)
        if not self._all_finite(loss):
            self._on_nonfinite_loss(batch_idx, len(batch.src_text))
            return None  # Lightning skips the backward pass and the optimizer step
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.src_text))
        if ratio < 1.0:
            self.log("train/teacher_forcing", ratio, batch_size=len(batch.src_text))
        return self._summed_loss(loss, n_tokens)

    def _all_finite(self, loss: Tensor) -> bool:
        """Whether the loss is finite on every rank: all DDP ranks must stop, or skip, together."""
        return self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True)

    def _on_nonfinite_loss(self, batch_idx: int, batch_size: int) -> None:
        where = f"at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        if self.nonfinite_loss == "skip" and all(p.isfinite().all() for p in self.net.parameters()):
            self.skipped_batches += 1
            log.warning(
                "Skipped a batch %s: the training loss is NaN or infinite (model.nonfinite_loss=skip); "
                "%d skipped so far.",
                where,
                self.skipped_batches,
            )
            self.log("train/skipped_batches", float(self.skipped_batches), batch_size=batch_size)
            return
        weights = " and the weights themselves are" if self.nonfinite_loss == "skip" else ""
        raise TrainingError(
            f"Training diverged: the loss{weights} NaN or infinite {where}. The run stopped; the checkpoints "
            "already written are unchanged. Lower model.optimizer.lr, keep trainer.gradient_clip_val on, "
            "use trainer.precision=32-true"
            + ("" if weights else ", or set model.nonfinite_loss=skip to skip such batches")
            + "."
        )

    # ----------------------------------------------------------- evaluation
    def _eval_step(self, batch: Batch, stage: str) -> None:
        _, nll, n_tokens = self._loss(batch, teacher_forcing_ratio=1.0)
        self.eval_nll.update(nll / n_tokens, weight=n_tokens)
        best = [nbest[0].tokens for nbest in self.translator.generator(self.net, batch.src, batch.src_len)]
        hypotheses = [self._hypothesis_text(tokens) for tokens in best]
        references = [self._reference_text(reference) for reference in batch.tgt_text]
        self.eval_bleu.update(hypotheses, references)
        self.eval_chrf.update(hypotheses, references)
        hypothesis_tokens = [self.codec.tgt_tokens(tokens) for tokens in best]
        reference_tokens = [self.codec.tgt_tokenizer.tokenize(reference) for reference in batch.tgt_text]
        self.eval_accuracy.update(hypothesis_tokens, reference_tokens)
        if stage == "test" and self.test_length_scores is not None:
            source_lengths = [len(source.split()) for source in batch.src_text]
            self.test_length_scores.update(
                source_lengths, hypotheses, references, hypothesis_tokens, reference_tokens
            )
        self._eval_texts.sources += batch.src_text
        self._eval_texts.references += batch.tgt_text
        self._eval_texts.hypotheses += hypotheses

    # scored exactly as `python -m src.evaluate` scores (src/translator.py)
    def _hypothesis_text(self, tokens: list[int]) -> str:
        return bleu_hypothesis(self.codec, tokens, self.bleu_tokenize)

    def _reference_text(self, reference: str) -> str:
        return bleu_reference(self.codec, reference, self.bleu_tokenize)

    def _eval_epoch_end(self, stage: str) -> None:
        metrics = (self.eval_nll, self.eval_bleu, self.eval_chrf, self.eval_accuracy)
        texts, self._eval_texts = self._eval_texts, ValidationOutputs()
        if not self.eval_nll.update_called:
            return
        loss = self.eval_nll.compute()  # each compute() sums the states of every DDP process
        bleu = float(self.eval_bleu.compute())
        accuracy = self.eval_accuracy.compute()
        self.log_dict(
            {
                f"{stage}/loss": loss,
                f"{stage}/ppl": torch.exp(loss),
                f"{stage}/bleu": bleu,
                f"{stage}/chrf": self.eval_chrf.compute(),
                f"{stage}/exact_match": accuracy["exact_match"],
                f"{stage}/token_accuracy": accuracy["token_accuracy"],
            },
            prog_bar=stage == "val",
            sync_dist=False,  # the metrics already hold every process's statistics
        )
        for metric in metrics:
            metric.reset()
        if stage == "test" and self.test_length_scores is not None:
            self.test_by_length = self.test_length_scores.compute()
            self.test_length_scores.reset()
        if stage == "val":
            self.validation_outputs = texts
            if not self.trainer.sanity_checking:
                self.best_bleu = max(self.best_bleu, bleu)
                self.log("val/bleu_best", self.best_bleu)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # ------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.scheduler_monitor, "interval": "epoch"},
        }

    def _summed_loss(self, loss: Tensor, n_tokens: Tensor) -> Tensor:
        """The batch's loss summed over its target tokens, divided by a constant.

        Summed rather than averaged, so that the gradient can be normalised by the target tokens of the whole
        accumulation window (`_normalize_gradients`): accumulating 4 batches of B sentences then gives the
        gradient of one batch of 4B. The constant, about the target tokens of one batch and the same on every
        rank, keeps the values in the range of per-token losses (what fp16 gradient scaling expects).
        """
        if self._loss_divisor is None:  # the run's first batch (a resumed run reads it from the checkpoint)
            self._loss_divisor = float(self.trainer.strategy.reduce(n_tokens.float(), reduce_op="mean"))
        self._window_tokens = self._window_tokens + n_tokens.detach()
        return loss * (n_tokens / self._loss_divisor)

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer | LightningOptimizer,
        optimizer_closure: Callable[[], Any] | None = None,
    ) -> None:
        """Lightning's step, with the gradient normalised right after the window's last backward pass: so
        callbacks' `on_before_optimizer_step` (gradient norms) and gradient clipping see the final gradient.
        """

        def closure() -> Any:
            loss = optimizer_closure()
            self._normalize_gradients()
            return loss

        optimizer.step(closure=closure)

    def _normalize_gradients(self) -> None:
        """Turn the accumulated gradient of the summed losses into the gradient per target token of the
        whole window: all its batches, on all ranks.

        Lightning divided each batch's loss by `accumulate_grad_batches` and DDP averaged the gradients over
        the ranks; both are undone here. Under fp16 AMP the gradients are still scaled at this point, which
        changes nothing: scaling is linear, and the scaler unscales (and checks for overflow) after this.
        """
        window_tokens = torch.as_tensor(self._window_tokens, dtype=torch.float, device=self.device)
        tokens = float(self.trainer.strategy.reduce(window_tokens, reduce_op="sum"))
        self._window_tokens = 0
        if tokens == 0:  # every batch of the window was skipped (model.nonfinite_loss=skip)
            return
        batches = self.trainer.accumulate_grad_batches * self.trainer.world_size
        factor = self._loss_divisor * batches / tokens
        for param in self.parameters():
            if param.grad is not None:
                param.grad.mul_(factor)

    # ---------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Everything needed to use the checkpoint alone, as plain data (weights-only loadable)."""
        checkpoint["seq2seq_lab"] = {
            "format": CHECKPOINT_FORMAT,
            "config": self.run_config,
            "codec": self.codec.state_dict(),
            "best_bleu": self.best_bleu,
            "skipped_batches": self.skipped_batches,
            "loss_divisor": self._loss_divisor,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Runs before Lightning loads the weights: refuse weights of another architecture with a fix."""
        path = getattr(self._trainer, "ckpt_path", None) or "the checkpoint"
        _check_weights_fit(checkpoint.get("state_dict", {}), self.state_dict(), path)
        self.best_bleu = checkpoint.get("seq2seq_lab", {}).get("best_bleu", float("-inf"))
        self.skipped_batches = checkpoint.get("seq2seq_lab", {}).get("skipped_batches", 0)
        self._loss_divisor = checkpoint.get("seq2seq_lab", {}).get("loss_divisor")


def _check_weights_fit(saved: dict[str, Tensor], current: dict[str, Tensor], path: Any) -> None:
    """Raise CheckpointError when the saved weights' names or shapes differ from the model's."""
    problems = [f"{name} missing" for name in sorted(current.keys() - saved.keys())]
    problems += [f"{name} not in this model" for name in sorted(saved.keys() - current.keys())]
    problems += [
        f"{name} is {tuple(saved[name].shape)}, not {tuple(current[name].shape)}"
        for name in sorted(current.keys() & saved.keys())
        if saved[name].shape != current[name].shape
    ]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise CheckpointError(
            f"Cannot resume from {path}: its weights do not fit the model this config builds "
            f"({'; '.join(problems[:3])}{more}). Resume with the encoder/attention/decoder/model.net settings "
            "of the original run (see its .hydra/config.yaml)."
        )
