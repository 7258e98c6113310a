"""Sample translations in TensorBoard's TEXT tab: source, reference and hypothesis, per validation."""

import lightning as L
from lightning.pytorch.callbacks import Callback

from src.callbacks.watched import logging_step, summary_writer, translate_watched, writes_after_validation

TAG = "translations"


class TranslationSamples(Callback):
    """After every validation, a markdown table of the first `num_sentences` validation sentences with
    their references and the model's current translations, at the global step (tag `translations`).
    The same sentences as `AttentionHeatmaps`, so a heatmap can be read beside its translation."""

    def __init__(self, num_sentences: int = 4) -> None:
        self.num_sentences = num_sentences

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = summary_writer(trainer)
        if writer is None or not writes_after_validation(trainer):
            return
        rows = [
            (sentence.source, sentence.reference, pl_module.translator.to_text(sentence.hypothesis))
            for sentence in translate_watched(trainer, pl_module, self.num_sentences)
        ]
        if rows:
            writer.add_text(
                TAG, markdown_table(("source", "reference", "hypothesis"), rows), logging_step(trainer)
            )


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A markdown table (TensorBoard renders markdown); `|` in a cell is escaped."""
    lines = [header, tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)
