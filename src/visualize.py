"""Attention heatmaps from a checkpoint: `python -m src.visualize ckpt_path=... sentences='["the cat sleeps"]'`.

Translates each sentence and saves its attention as a PNG: source tokens on x, output tokens on y, a
colour bar, the source and the translation as title; with several heads, their mean and every head.
"""

import logging
import re
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig

from src.checkpoint import load_translator
from src.config import register_resolvers
from src.entry import user_errors_exit
from src.errors import ConfigError, DataError
from src.plotting import attention_figure, save_figure

log = logging.getLogger("seq2seq-lab")
register_resolvers()


def visualize(cfg: DictConfig) -> list[Path]:
    sentences = read_sentences(cfg)
    translator, _ = load_translator(cfg)
    if translator.net.num_heads == 0:
        raise ConfigError(
            "This model has no attention to show: it was trained with attention=none. "
            "Visualise a model trained with an attention (e.g. attention=bahdanau)."
        )
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    saved = []
    for number, (text, nbest) in enumerate(zip(sentences, translator.translate(sentences), strict=True), 1):
        best = nbest[0]
        if best.attention is None:
            log.warning("Sentence %d is empty: there is no attention to show.", number)
            continue
        figure = attention_figure(
            best.attention,
            *translator.attention_labels(text, best),
            title=f"{text}\n→ {translator.to_text(best)}",
        )
        path = output_dir / f"{number:03d}_{_slug(text)}.png"
        save_figure(figure, path)
        saved.append(path)
    log.info(
        "Saved %d attention heatmaps in %s:\n  %s", len(saved), output_dir, "\n  ".join(p.name for p in saved)
    )
    return saved


def read_sentences(cfg: DictConfig) -> list[str]:
    """`sentences` (a list, or one sentence), then the lines of the `input` file."""
    sentences = cfg.sentences or []
    sentences = list(sentences) if isinstance(sentences, ListConfig | list) else [str(sentences)]
    if cfg.input is not None:
        if not Path(cfg.input).is_file():
            raise DataError(f"input={cfg.input}: no such file. Name a text file with one sentence per line.")
        sentences += Path(cfg.input).read_text(encoding="utf-8", errors="replace").splitlines()
    if not sentences:
        raise ConfigError(
            'Nothing to visualise: give sentences=\'["the cat sleeps", "..."]\' or input=<file with one '
            "sentence per line>."
        )
    return [str(sentence) for sentence in sentences]


def _slug(text: str, max_chars: int = 40) -> str:
    """A file-name-safe short form of a sentence."""
    return re.sub(r"\W+", "_", text).strip("_")[:max_chars] or "sentence"


@hydra.main(version_base="1.3", config_path="../conf", config_name="visualize")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    visualize(cfg)


if __name__ == "__main__":
    main()
