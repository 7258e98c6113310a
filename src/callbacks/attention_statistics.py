"""Attention statistics in TensorBoard's SCALARS tab: entropy, monotonicity and coverage per validation."""

import lightning as L

from src.callbacks.attention_measures import mean_measures
from src.callbacks.watched import AttentionWatcher, log_scalars, translate_watched, writes_after_validation


class AttentionStatistics(AttentionWatcher):
    """After every validation, translate the first `num_sentences` validation sentences and log the
    mean entropy, monotonicity and coverage of their attention (heads averaged; see
    `src.callbacks.attention_measures`) as `attention/entropy`, `attention/monotonicity`, `attention/coverage`.

    A model without attention (attention=none) has none to measure: this is said once, at fit start.
    """

    shows = "attention statistics"

    def __init__(self, num_sentences: int = 100) -> None:
        super().__init__(num_sentences)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.net.num_heads == 0 or not writes_after_validation(trainer):
            return
        attentions = [
            sentence.hypothesis.attention.mean(dim=0)  # [heads, tgt_len, src_len] -> [tgt_len, src_len]
            for sentence in translate_watched(trainer, pl_module, self.num_sentences)
            if sentence.hypothesis.attention is not None
        ]
        means = mean_measures(attentions)
        log_scalars(trainer, {f"attention/{name}": value for name, value in means.items()})
