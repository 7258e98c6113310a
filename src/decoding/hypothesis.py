"""The result of decoding one sentence."""

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Hypothesis:
    """One translation of one source sentence, as a search returns it.

    tokens:    output ids, without <bos> and <eos>
    score:     the ranking score: `log_prob` with the length and coverage penalties applied
               (equal to `log_prob` when both penalties are 0)
    log_prob:  sum of the token log-probabilities, <eos> included
    attention: [heads, len(tokens) + 1, src_len] float32 on the CPU: one row per output token (<eos>
               included), one column per real source token of this sentence; None for a model
               without attention
    """

    tokens: list[int]
    score: float
    log_prob: float
    attention: Tensor | None = None
