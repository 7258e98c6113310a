"""Attention heatmaps from a checkpoint: `python -m src.visualize ckpt_path=... sentences='["the cat sleeps"]'`.

`format=png` (the default) translates each sentence and saves its attention as a PNG: source tokens on x,
output tokens on y, a colour bar, the source and the translation as title; with several heads, their mean
and every head. `format=html` writes one self-contained page to explore in a browser (`src.explorer`): the
n-best hypotheses of each sentence and every layer and head of every attention; with `pairs` (and `gold`),
also each reference and its gold alignment.
"""

import logging
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from src.alignment import PAIR_FORMATS, check_gold, read_gold, read_pairs
from src.checkpoint import load_translator
from src.config import register_resolvers
from src.entry import entry_point
from src.errors import ConfigError, DataError
from src.explorer import Explorer, Sentence, write_page
from src.plotting import attention_figure, save_figure

log = logging.getLogger("seq2seq-lab")
register_resolvers()

FORMATS = ("png", "html")


def visualize(cfg: DictConfig) -> list[Path]:
    """The PNGs written (`format=png`), or the one HTML page (`format=html`)."""
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format} is unknown: use png (one heatmap per sentence) or html.")
    if cfg.format == "html":
        return [explore(cfg)]
    if cfg.pairs or cfg.gold:
        raise ConfigError("pairs= and gold= are shown by the attention explorer: add format=html.")
    sentences = read_sentences(cfg)
    translator, _ = load_translator(cfg)
    _check_attention(translator.net)
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


def explore(cfg: DictConfig) -> Path:
    """Write the attention explorer page of `sentences`, `input` and `pairs` (with `gold`)."""
    sentences = [Sentence(text) for text in read_sentences(cfg, required=not cfg.pairs)]
    sentences += read_pair_sentences(cfg)
    translator, train_config = load_translator(cfg)
    _check_attention(translator.net)
    explorer = Explorer(translator.net, translator.codec, translator.generator, translator.max_src_len)
    model = {
        "description": describe_model(train_config, cfg),
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
    }
    data = explorer.page_data(sentences, title=f"Attention of {Path(cfg.ckpt_path).name}", model=model)
    for number in data["skipped"]:
        log.warning("Sentence %d is empty: there is no attention to show.", number)
    path = write_page(data, Path(cfg.output_dir) / cfg.html_file)
    log.info("Saved the attention explorer of %d sentences: %s", len(data["sentences"]), path)
    return path


def read_pair_sentences(cfg: DictConfig) -> list[Sentence]:
    """The sentences of the `pairs` file, each with its reference and, with `gold`, its gold links."""
    if not cfg.pairs:
        if cfg.gold:
            raise ConfigError(
                "gold= needs pairs=<file of 'source<TAB>reference' lines>: gold links join the words of a "
                "source and of its reference."
            )
        return []
    if cfg.pairs_format not in PAIR_FORMATS:
        raise ConfigError(f"pairs_format={cfg.pairs_format} is unknown: use {', '.join(PAIR_FORMATS)}.")
    pairs = read_pairs(cfg.pairs, cfg.pairs_format, option="pairs")
    gold = [None] * len(pairs)
    if cfg.gold:
        if cfg.gold_index_base not in (0, 1) or isinstance(cfg.gold_index_base, bool):
            raise ConfigError(
                f"gold_index_base={cfg.gold_index_base} is invalid: use 1 (1-based links) or 0."
            )
        gold = read_gold(cfg.gold, cfg.gold_index_base, option="gold")
        check_gold(gold, pairs, cfg.gold, cfg.pairs, cfg.gold_index_base)
    return [
        Sentence(" ".join(src), src_words=src, reference=tgt, gold=links)
        for (src, tgt), links in zip(pairs, gold, strict=True)
    ]


def describe_model(train_config: dict, cfg: DictConfig) -> str:
    """One line: the model's encoder, attention and decoder, and the search."""
    net = train_config.get("model", {}).get("net", {})
    parts = []
    for part in ("encoder", "attention", "decoder"):
        target = (net.get(part) or {}).get("_target_", "?")
        parts.append(f"{part}: {target.rsplit('.', 1)[-1]}")
    if net.get("head_mask"):
        pruned = sum(gate == 0 for layers in net["head_mask"].values() for heads in layers for gate in heads)
        parts.append(f"{pruned} heads pruned")
    decode = cfg.decode
    search = "greedy search" if decode.beam_size == 1 else f"beam {decode.beam_size}, {decode.n_best}-best"
    return " · ".join([*parts, search])


def _check_attention(net) -> None:
    if net.num_heads == 0:
        raise ConfigError(
            "This model has no attention to show: it was trained with attention=none. "
            "Visualise a model trained with an attention (e.g. attention=bahdanau)."
        )


def read_sentences(cfg: DictConfig, required: bool = True) -> list[str]:
    """`sentences` (a list, or one sentence), then the lines of the `input` file; none at all is an
    error when `required`."""
    sentences = cfg.sentences or []
    sentences = list(sentences) if isinstance(sentences, ListConfig | list) else [str(sentences)]
    if cfg.input is not None:
        if not Path(cfg.input).is_file():
            raise DataError(f"input={cfg.input}: no such file. Name a text file with one sentence per line.")
        sentences += Path(cfg.input).read_text(encoding="utf-8", errors="replace").splitlines()
    if not sentences and required:
        raise ConfigError(
            'Nothing to visualise: give sentences=\'["the cat sleeps", "..."]\' or input=<file with one '
            "sentence per line> (or, with format=html, pairs=<file of 'source<TAB>reference' lines>)."
        )
    return [str(sentence) for sentence in sentences]


def _slug(text: str, max_chars: int = 40) -> str:
    """A file-name-safe short form of a sentence."""
    return re.sub(r"\W+", "_", text).strip("_")[:max_chars] or "sentence"


@entry_point("visualize")
def main(cfg: DictConfig) -> None:
    visualize(cfg)


if __name__ == "__main__":
    main()
