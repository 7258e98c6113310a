"""Attention heatmaps in TensorBoard's IMAGES tab, one per watched validation sentence and validation."""

import lightning as L
from matplotlib.figure import Figure

from src.callbacks.watched import (
    AttentionWatcher,
    WatchedSentence,
    logging_step,
    summary_writer,
    translate_watched,
    writes_after_validation,
)
from src.plotting import attention_figure

TAG = "attention/sentence_{index}"


class AttentionHeatmaps(AttentionWatcher):
    """After every validation, translate the first `num_sentences` validation sentences and log the
    attention of each as a figure (`attention/sentence_<i>`) at the step of `val/bleu`, so that
    TensorBoard's step slider shows the alignment forming. Multi-head attention shows the mean, then every head.

    A model without attention (attention=none) has nothing to show: this is said once, at fit start.
    """

    shows = "attention heatmaps"

    def __init__(self, num_sentences: int = 4) -> None:
        super().__init__(num_sentences)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = summary_writer(trainer)
        if writer is None or pl_module.net.num_heads == 0 or not writes_after_validation(trainer):
            return
        for index, sentence in enumerate(translate_watched(trainer, pl_module, self.num_sentences)):
            if sentence.hypothesis.attention is not None:  # None: an empty source, nothing was attended
                figure = self._figure(pl_module, sentence)
                writer.add_figure(TAG.format(index=index), figure, logging_step(trainer), close=True)

    @staticmethod
    def _figure(pl_module: L.LightningModule, sentence: WatchedSentence) -> Figure:
        attention = sentence.hypothesis.attention  # [heads, len(tokens) + 1, src_len]
        codec = pl_module.codec
        # the translator truncates over-long sources; lookup, unlike decoding, keeps one label per output id
        src_tokens = codec.src_tokens(sentence.source)[: attention.size(-1)]
        tgt_tokens = [*codec.tgt_vocab.lookup(sentence.hypothesis.tokens), "<eos>"]
        title = f"{sentence.source}\n→ {pl_module.translator.to_text(sentence.hypothesis)}"
        return attention_figure(attention, src_tokens, tgt_tokens, title=title)
