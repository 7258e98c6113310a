"""Alignment Error Rate while training: how well the attention aligns words, after every validation."""

import logging
from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from torch import Tensor

from src.aligner import Aligner
from src.alignment import (
    METHODS,
    GoldLinks,
    align,
    alignment_scores,
    check_gold,
    read_gold,
    read_pairs,
    select_attention,
    word_attention,
)
from src.callbacks.watched import log_scalars, logging_step, summary_writer, writes_after_validation
from src.errors import ConfigError
from src.plotting import heatmap_panel, heatmap_size

log = logging.getLogger(__name__)

TAG = "attention/aer_pair"


class AlignmentError(Callback):
    """After every validation, force-decode the gold pairs (teacher forcing on the given target, as
    `python -m src.align` does), extract word links with `method`, and log `attention/aer`,
    `attention/alignment_precision` and `attention/alignment_recall` (in percent, Och & Ney 2003), with a
    heatmap of pair `heatmap_pair`'s word attention and its gold links marked on top (sure: filled squares,
    possible: open squares). Off unless `gold` is set (`callbacks.alignment_error.gold=...`).

    input:   the sentence pairs (`source<TAB>target` or `source ||| target`, words separated by spaces)
    gold:    one line of links per pair, `i-j` sure and `ipj` possible, source word first
    reverse: the model translates the files' second side into the first (`data.reverse`, which the
             config passes): each pair and its gold links are turned round before force-decoding
    """

    def __init__(
        self,
        input: str | None = None,
        gold: str | None = None,
        gold_index_base: int = 1,
        method: str = "argmax",
        threshold: float = 0.3,
        layer: int | str = -1,
        head: int | str = "mean",
        batch_size: int = 64,
        heatmap_pair: int = 0,
        reverse: bool = False,
    ) -> None:
        self.pairs: list = []
        self.gold: list[GoldLinks] = []
        if gold is None and input is None:
            return
        if gold is None or input is None:
            missing = "gold" if gold is None else "input"
            raise ConfigError(
                f"callbacks.alignment_error.{missing} is missing: the AER callback needs both the sentence "
                "pairs (input) and their gold links (gold)."
            )
        if method not in METHODS:
            raise ConfigError(
                f"callbacks.alignment_error.method={method} is unknown: use {', '.join(METHODS)}."
            )
        self.pairs = read_pairs(input, option="callbacks.alignment_error.input")
        self.gold = read_gold(gold, gold_index_base, option="callbacks.alignment_error.gold")
        check_gold(self.gold, self.pairs, gold, input, gold_index_base)
        if reverse:
            self.pairs = [(tgt, src) for src, tgt in self.pairs]
            self.gold = [links.transposed() for links in self.gold]
        if not 0 <= heatmap_pair < len(self.pairs):
            raise ConfigError(
                f"callbacks.alignment_error.heatmap_pair={heatmap_pair} is out of range: {input} has "
                f"{len(self.pairs)} pairs (0-based)."
            )
        self.choice = {"method": method, "threshold": threshold, "layer": layer, "head": head}
        self.batch_size, self.heatmap_pair, self.source = batch_size, heatmap_pair, Path(input).name

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pairs and pl_module.net.num_heads == 0:
            raise ConfigError(
                "callbacks.alignment_error.gold is set, but the model has no attention to align with "
                "(attention=none): choose an attention or switch the callback off (~callbacks.alignment_error)."
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.pairs or not writes_after_validation(trainer):
            return
        attentions = Aligner(pl_module.net, pl_module.codec, self.batch_size).attention(self.pairs)
        links = [align(attention, **self.choice) for attention in attentions]
        scores = alignment_scores(links, self.gold)
        log_scalars(
            trainer,
            {
                "attention/aer": scores.aer,
                "attention/alignment_precision": scores.precision,
                "attention/alignment_recall": scores.recall,
            },
        )
        writer = summary_writer(trainer)
        if writer is not None:
            i = self.heatmap_pair
            weights = word_attention(attentions[i], shift=self.choice["method"] == "shift")
            weights = select_attention(weights, self.choice["layer"], self.choice["head"])
            figure = gold_figure(
                weights, *self.pairs[i], self.gold[i], f"{self.source}, pair {i}: AER {scores.aer:.1f}"
            )
            writer.add_figure(TAG, figure, logging_step(trainer), close=True)


def gold_figure(
    weights: Tensor, src_words: list[str], tgt_words: list[str], gold: GoldLinks, title: str
) -> Figure:
    """The word attention `[tgt_words, src_words]` with the gold links on top."""
    figure, ax = plt.subplots(figsize=heatmap_size(len(src_words), len(tgt_words)))
    heatmap_panel(figure, ax, weights, src_words, tgt_words, title, labels=("source word", "target word"))
    for links, face in ((gold.sure, "red"), (gold.possible - gold.sure, "none")):  # link: (source, target)
        if links:
            sources, targets = zip(*links, strict=True)
            ax.scatter(sources, targets, marker="s", s=60, facecolors=face, edgecolors="red", alpha=0.7)
    figure.tight_layout()
    return figure
