"""The LightningModule: trains a `Seq2Seq` network and scores it with corpus BLEU on validation.

What callbacks may read: `net`, `codec`, `translator`, and after every validation epoch
`validation_outputs` (sources, references and hypotheses of the whole validation set on this rank).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from lightning import LightningModule
from torch import Tensor

from src.data.codec import Codec
from src.data.datamodule import Batch
from src.decoding import SequenceGenerator
from src.losses import attention_entropy, coverage_loss, token_nll
from src.metrics import CorpusScores, corpus_scores
from src.models.seq2seq import Seq2Seq
from src.schedules import TeacherForcingSchedule
from src.translator import Translator

CHECKPOINT_FORMAT = 1


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
        teacher_forcing: TeacherForcingSchedule | None = None,
        val_generator: SequenceGenerator | None = None,
        bleu_tokenize: str = "13a",
    ):
        """`net` arrives as a partial (from Hydra) and is completed with the vocabulary sizes here."""
        super().__init__()
        self.codec = codec
        self.net = net(src_vocab_size=len(codec.src_vocab), tgt_vocab_size=len(codec.tgt_vocab))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_monitor = scheduler_monitor
        self.label_smoothing = label_smoothing
        self.coverage_loss_weight = coverage_loss_weight
        self.attention_entropy_weight = attention_entropy_weight
        self.teacher_forcing = teacher_forcing or TeacherForcingSchedule()
        self.translator = Translator(self.net, codec, val_generator or SequenceGenerator())
        self.bleu_tokenize = bleu_tokenize
        # the resolved run config as plain data, set by the entry point; stored in every checkpoint so that
        # a checkpoint alone can rebuild the model (see `src.checkpoint`)
        self.run_config: dict[str, Any] = {}
        self.validation_outputs = ValidationOutputs()
        self.last_scores: CorpusScores | None = None
        self.best_bleu = float("-inf")
        self._eval_sums: dict[str, Tensor] = {}
        self._eval_texts = ValidationOutputs()

    # ----------------------------------------------------------------- loss
    def _loss(self, batch: Batch, teacher_forcing_ratio: float) -> tuple[Tensor, Tensor, Tensor]:
        """(loss per target token incl. attention terms, summed NLL without smoothing, target tokens)."""
        logits, attn_weights = self.net(batch.src, batch.src_len, batch.tgt_in, teacher_forcing_ratio)
        tgt_mask = batch.tgt_out != self.net.pad_id  # [batch, tgt_len]
        n_tokens = tgt_mask.sum()
        loss_sum = token_nll(logits, batch.tgt_out, self.net.pad_id, self.label_smoothing)
        if attn_weights is not None and self.coverage_loss_weight:
            loss_sum = loss_sum + self.coverage_loss_weight * coverage_loss(attn_weights, tgt_mask)
        if attn_weights is not None and self.attention_entropy_weight:
            loss_sum = loss_sum + self.attention_entropy_weight * attention_entropy(attn_weights, tgt_mask)
        nll = loss_sum if not self.label_smoothing else token_nll(logits, batch.tgt_out, self.net.pad_id)
        return loss_sum / n_tokens, nll.detach(), n_tokens

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        ratio = self.teacher_forcing(self.global_step)
        loss, _, n_tokens = self._loss(batch, ratio)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.src_text))
        if ratio < 1.0:
            self.log("train/teacher_forcing", ratio, batch_size=len(batch.src_text))
        return loss

    # ----------------------------------------------------------- evaluation
    def _eval_step(self, batch: Batch) -> None:
        _, nll, n_tokens = self._loss(batch, teacher_forcing_ratio=1.0)
        for key, value in (("nll", nll), ("tokens", n_tokens)):
            self._eval_sums[key] = self._eval_sums.get(key, 0) + value.float()
        hypotheses = self.translator.generator(self.net, batch.src, batch.src_len)
        self._eval_texts.sources += batch.src_text
        self._eval_texts.references += batch.tgt_text
        self._eval_texts.hypotheses += [self._hypothesis_text(nbest[0].tokens) for nbest in hypotheses]

    def _hypothesis_text(self, tokens: list[int]) -> str:
        if self.bleu_tokenize == "none":
            return " ".join(self.codec.tgt_tokens(tokens))
        return self.codec.decode_tgt(tokens)

    def _reference_text(self, reference: str) -> str:
        if self.bleu_tokenize == "none":
            return " ".join(self.codec.tgt_tokenizer.tokenize(reference))
        return reference

    def _eval_epoch_end(self, stage: str) -> None:
        sums, texts = self._eval_sums, _gather_texts(self._eval_texts)
        self._eval_sums, self._eval_texts = {}, ValidationOutputs()
        if not sums:
            return
        nll = self.trainer.strategy.reduce(sums["nll"], reduce_op="sum")
        tokens = self.trainer.strategy.reduce(sums["tokens"], reduce_op="sum")
        scores = corpus_scores(
            texts.hypotheses, [self._reference_text(r) for r in texts.references], self.bleu_tokenize
        )
        loss = nll / tokens
        self.log_dict(
            {
                f"{stage}/loss": loss,
                f"{stage}/ppl": torch.exp(loss),
                f"{stage}/bleu": scores.bleu,
                f"{stage}/chrf": scores.chrf,
            },
            prog_bar=stage == "val",
            sync_dist=False,  # already reduced over ranks
        )
        if stage == "val":
            self.validation_outputs = texts
            if not self.trainer.sanity_checking:
                self.best_bleu = max(self.best_bleu, scores.bleu)
                self.log("val/bleu_best", self.best_bleu)
        self.last_scores = scores

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

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

    # ---------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Everything needed to use the checkpoint alone, as plain data (weights-only loadable)."""
        checkpoint["seq2seq_lab"] = {
            "format": CHECKPOINT_FORMAT,
            "config": self.run_config,
            "codec": self.codec.state_dict(),
            "best_bleu": self.best_bleu,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_bleu = checkpoint.get("seq2seq_lab", {}).get("best_bleu", float("-inf"))


def _gather_texts(texts: ValidationOutputs) -> ValidationOutputs:
    """All ranks' texts on every rank (BLEU is a corpus statistic: it cannot be averaged over ranks)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return texts
    gathered: list[ValidationOutputs | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, texts)
    merged = ValidationOutputs()
    for part in gathered:
        assert part is not None
        merged.sources += part.sources
        merged.references += part.references
        merged.hypotheses += part.hypotheses
    return merged
