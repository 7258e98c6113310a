"""Build a vocabulary shortlist for a checkpoint: `python -m src.shortlist ckpt_path=... [frequent=] [best=]`.

Tokenises the training pairs with the checkpoint's own tokenizers and vocabularies, counts which target
tokens co-occur with each source token (`src.decoding.shortlist.Shortlist.build`) and writes the file that the
inference commands read with `shortlist=<file>` (conf/shortlist.yaml).
"""

import logging
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.checkpoint import load_model, trained_reverse
from src.config import register_resolvers
from src.data.batch import collate_sources
from src.data.codec import Codec
from src.data.tsv import read_parallel_tsv
from src.decoding.shortlist import Shortlist
from src.entry import entry_point
from src.errors import ConfigError

log = logging.getLogger("seq2seq-lab")
register_resolvers()


def build_shortlist(cfg: DictConfig) -> Path:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path is missing: name the checkpoint the shortlist is for, e.g. ckpt_path=<best.ckpt>"
        )
    loaded = load_model(cfg.ckpt_path)
    train_path = cfg.train_path or loaded.config.get("data", {}).get("train_path")
    if not train_path:
        raise ConfigError(
            "train_path is missing and the checkpoint names no training file: give train_path=<tsv>."
        )
    option = (
        "train_path" if cfg.train_path else "the checkpoint's data.train_path (override with train_path=)"
    )
    reverse = trained_reverse(loaded.config)  # read the way round the model translates
    pairs = read_parallel_tsv(train_path, on_bad_line="skip", option=option, reverse=reverse).pairs
    codec = loaded.codec
    log.info("Counting %d training pairs of %s", len(pairs), train_path)
    shortlist = Shortlist.build(
        [codec.encode_src(src) for src, _ in pairs],
        [codec.encode_tgt(tgt) for _, tgt in pairs],
        len(codec.src_vocab),
        len(codec.tgt_vocab),
        frequent=cfg.frequent,
        best=cfg.best,
    )
    output = Path(cfg.output) if cfg.output else Path(cfg.ckpt_path).parent / "shortlist.pt"
    shortlist.save(output)
    sizes = [len(shortlist.for_batch(src)) for src in _sample_batches(codec, pairs)]
    log.info(
        "Done.\n  Shortlist: %s (%d frequent target tokens + %d per source token, of %d)\n"
        "  Batches of 64 training sources keep %.0f target tokens on average\n"
        "  Use it: python -m src.evaluate ckpt_path=%s shortlist=%s",
        output,
        len(shortlist.frequent),
        cfg.best,
        len(codec.tgt_vocab),
        sum(sizes) / max(len(sizes), 1),
        cfg.ckpt_path,
        output,
    )
    return output


def _sample_batches(
    codec: Codec, pairs: list[tuple[str, str]], size: int = 64, count: int = 10
) -> Iterator[Tensor]:
    """Up to `count` batches of `size` training sources, as ids `[batch, src_len]`: what a shortlist keeps in
    practice."""
    for start in range(0, min(len(pairs), size * count), size):
        yield collate_sources([codec.encode_src(src) or [0] for src, _ in pairs[start : start + size]])[0]


@entry_point("shortlist")
def main(cfg: DictConfig) -> Path:
    return build_shortlist(cfg)


if __name__ == "__main__":
    main()
