"""Score a checkpoint on a test set: `python -m src.evaluate ckpt_path=... [data.test_path=...] [key=value ...]`.

Reads like a table of contents: load the model, read the test set, translate it, score it with sacrebleu
exactly as validation does, also per source-length bucket (`length_buckets`), write the hypotheses, the
scores and a figure of BLEU against source length (see conf/evaluate.yaml).
"""

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from sacrebleu.metrics import BLEU

from src.checkpoint import load_translator, read_test_pairs
from src.config import register_resolvers
from src.decoding.hypothesis import Hypothesis
from src.entry import entry_point
from src.errors import ConfigError
from src.metrics import SequenceAccuracy, corpus_scores, length_bucket_edges, scores_by_length
from src.plotting import length_figure, save_figure
from src.translator import Translator, bleu_hypothesis, bleu_reference

log = logging.getLogger("seq2seq-lab")
register_resolvers()


def evaluate(cfg: DictConfig) -> float:
    translator, train_config = load_translator(cfg)
    test_path, pairs = read_test_pairs(cfg.data.test_path, train_config)
    bleu_tokenize = cfg.bleu_tokenize or train_config.get("model", {}).get("bleu_tokenize", "13a")
    if bleu_tokenize not in BLEU.TOKENIZERS:
        raise ConfigError(
            f"bleu_tokenize={bleu_tokenize} is not a sacrebleu tokenizer: use one of "
            f"{', '.join(BLEU.TOKENIZERS)} (13a for detokenized text, none for the model's own tokens)."
        )
    try:
        length_bucket_edges(list(cfg.length_buckets))
    except ValueError as err:
        raise ConfigError(f"length_buckets={list(cfg.length_buckets)} is invalid: {err}.") from None
    sources, references = zip(*pairs, strict=True)

    log.info("Translating %d sentences of %s", len(sources), test_path)
    scored = score_translations(translator, sources, references, bleu_tokenize, list(cfg.length_buckets))
    best = scored.best

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    hypotheses_path = output_dir / "hypotheses.txt"
    hypotheses_path.write_text("".join(translator.to_text(h) + "\n" for h in best), encoding="utf-8")
    figure = length_figure(
        {"model": scored.by_length}, title=f"BLEU by source length, {Path(test_path).name}"
    )
    save_figure(figure, output_dir / "bleu_by_length.png")
    result = {
        **scored.scores,
        "bleu_tokenize": bleu_tokenize,
        "decode": dataclasses.asdict(translator.generator),
        "batch_size": translator.batch_size,
        "max_src_len": translator.max_src_len,
        "device": str(next(translator.net.parameters()).device),
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "test_path": str(Path(test_path).resolve()),
        "by_length": scored.by_length,
    }
    scores_path = output_dir / "scores.json"
    scores_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summarize(result, hypotheses_path, scores_path, output_dir / "bleu_by_length.png")
    return scored.scores["bleu"]


@dataclasses.dataclass
class ScoredTranslations:
    best: list[Hypothesis]  # the best hypothesis of each sentence, in input order
    hypotheses: list[str]  # as sacrebleu scored them (detokenized, or the model's tokens)
    references: list[str]  # likewise
    scores: dict[str, Any]  # bleu, chrf, their signatures, exact_match, token_accuracy, sentences, speed
    by_length: list[dict[str, Any]]  # src.metrics.scores_by_length


def score_translations(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[str],
    bleu_tokenize: str,
    length_buckets: list[int],
) -> ScoredTranslations:
    """Translate `sources` and score them against `references` exactly as validation does, overall and
    per source-length bucket; the decoding time counts only the search (not loading or scoring)."""
    start = time.perf_counter()
    best = [nbest[0] for nbest in translator.translate(sources)]
    seconds = time.perf_counter() - start
    codec, lowercase = translator.codec, translator.codec.tgt_tokenizer.lowercase
    hypotheses = [bleu_hypothesis(codec, h.tokens, bleu_tokenize) for h in best]
    bleu_references = [bleu_reference(codec, r, bleu_tokenize) for r in references]
    hypothesis_tokens = [codec.tgt_tokens(h.tokens) for h in best]
    reference_tokens = [codec.tgt_tokenizer.tokenize(r) for r in references]
    accuracy = SequenceAccuracy()
    accuracy.update(hypothesis_tokens, reference_tokens)
    scores = {
        **dataclasses.asdict(corpus_scores(hypotheses, bleu_references, bleu_tokenize, lowercase=lowercase)),
        **{key: float(value) for key, value in accuracy.compute().items()},
        "sentences": len(sources),
        "seconds": seconds,
        "sentences_per_second": len(sources) / seconds if seconds > 0 else None,
    }
    by_length = scores_by_length(
        [len(source.split()) for source in sources],
        hypotheses,
        bleu_references,
        length_buckets,
        bleu_tokenize,
        lowercase,
        hypothesis_tokens=hypothesis_tokens,
        reference_tokens=reference_tokens,
    )
    return ScoredTranslations(best, hypotheses, bleu_references, scores, by_length)


def length_table(rows: list[dict[str, Any]]) -> str:
    """The per-bucket scores as a terminal table."""

    def number(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["source words  sentences   BLEU   chrF  hyp/ref  exact match"]
    for row in rows:
        lines.append(
            f"{row['bucket']:>12}  {row['sentences']:>9}  {number(row['bleu']):>5}  {number(row['chrf']):>5}"
            f"  {number(row['length_ratio']):>7}  {number(row.get('exact_match'), 3):>11}"
        )
    return "\n  ".join(lines)


def summarize(result: dict[str, Any], hypotheses_path: Path, scores_path: Path, figure_path: Path) -> None:
    decode = result["decode"]
    search = "greedy" if decode["beam_size"] == 1 else f"beam {decode['beam_size']}"
    lines = [
        f"BLEU = {result['bleu']:.2f}  chrF = {result['chrf']:.2f}  exact match = {result['exact_match']:.3f}  "
        f"({result['sentences']} sentences)",
        f"BLEU signature: {result['bleu_signature']}",
        f"chrF signature: {result['chrf_signature']}",
        f"Speed: {result['sentences_per_second']:.1f} sentences/s ({search}, batch_size={result['batch_size']}, "
        f"{result['device']})",
        "By source length (words of the source as written; BLEU and chrF: corpus scores per bucket):\n  "
        + length_table(result["by_length"]),
        f"Hypotheses: {hypotheses_path}",
        f"Scores: {scores_path}",
        f"BLEU by length: {figure_path}",
    ]
    log.info("Done.\n  %s", "\n  ".join(lines))


@entry_point("evaluate")
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
