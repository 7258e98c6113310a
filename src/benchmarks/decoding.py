"""Decoding speed and BLEU on a validation set, through the same `Translator` every tool uses."""

import time
from dataclasses import dataclass

from torch import nn

from src.data.codec import Codec
from src.decoding import SequenceGenerator
from src.decoding.shortlist import Shortlist
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
    outputs = [hypotheses[0].tokens for hypotheses in nbest]
    hypotheses = [bleu_hypothesis(codec, tokens, "none") for tokens in outputs]
    bleu = corpus_scores(hypotheses, [bleu_reference(codec, ref, "none") for ref in references], "none").bleu
    return Decoded(seconds, len(sources), bleu, outputs)
