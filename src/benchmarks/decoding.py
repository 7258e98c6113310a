"""Decoding speed and BLEU on a validation set, through the same `Translator` every tool uses."""

import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from src.data.codec import Codec
from src.decoding import SequenceGenerator
from src.decoding.shortlist import Shortlist
from src.export import translate_ctranslate2
from src.metrics import corpus_scores
from src.translator import Translator, bleu_hypothesis, bleu_reference


@dataclass
class Decoded:
    seconds: float
    sentences: int
    bleu: float  # sacrebleu, tokenize=none, on the tokenised lowercased text
    outputs: list[list[int]]  # the best hypothesis of each sentence, in input order

    @property
    def sentences_per_s(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0


def decode(
    net: nn.Module,
    codec: Codec,
    sources: list[str],
    references: list[str],
    generator: SequenceGenerator,
    batch_size: int,
    shortlist: Shortlist | None = None,
) -> Decoded:
    """Translate `sources` (tokenising, batching by length, searching) and score the best hypotheses."""
    translator = Translator(net, codec, generator, batch_size=batch_size, shortlist=shortlist)
    start = time.perf_counter()
    nbest = translator.translate(sources)
    seconds = time.perf_counter() - start
    return scored(codec, [hypotheses[0].tokens for hypotheses in nbest], references, seconds)


def decode_ctranslate2(
    translator: Any,
    codec: Codec,
    sources: list[str],
    references: list[str],
    generator: SequenceGenerator,
    batch_size: int,
) -> Decoded:
    """`decode` with a `ctranslate2.Translator` of the same model (`src.export`), the same batches and limits."""
    start = time.perf_counter()
    outputs = translate_ctranslate2(
        translator, codec, sources, generator.beam_size, generator.max_len_a, generator.max_len_b, batch_size
    )
    return scored(codec, outputs, references, time.perf_counter() - start)


def scored(codec: Codec, outputs: list[list[int]], references: list[str], seconds: float) -> Decoded:
    hypotheses = [bleu_hypothesis(codec, tokens, "none") for tokens in outputs]
    bleu = corpus_scores(hypotheses, [bleu_reference(codec, ref, "none") for ref in references], "none").bleu
    return Decoded(seconds, len(outputs), bleu, outputs)
