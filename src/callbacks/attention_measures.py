"""How attention behaves, in three measures: entropy, monotonicity and coverage.

Each measure takes the attention of one translation, `[tgt_len, src_len]`: one distribution over the
source tokens per output token (average the heads first). `mean_measures` averages them over
sentences. Plain torch, no Lightning: the `AttentionStatistics` callback logs them.
"""

import math

import torch
from torch import Tensor

COVERED = 0.5  # cumulative attention a source token needs to count as translated


def entropy(weights: Tensor) -> float:
    """Mean entropy -sum_i a_ti log a_ti of the rows, in nats: 0 for one-hot rows, log(src_len) for
    uniform ones. Low entropy = sharp alignments."""
    weights = weights.double()
    per_row = -(weights * weights.clamp_min(torch.finfo(weights.dtype).tiny).log()).sum(dim=-1)
    return per_row.mean().item()


def monotonicity(weights: Tensor) -> float:
    """Spearman rank correlation between each output step's most attended source position and the
    step index: 1 when attention moves left to right (a diagonal), -1 right to left (an anti-diagonal).

    0 when a ranking is constant (a single step, or every step attending to the same position): no
    order to speak of.
    """
    positions = weights.argmax(dim=-1).double()  # [tgt_len]
    steps = torch.arange(len(positions), dtype=torch.double)
    return _pearson(_average_ranks(positions), steps)


def coverage(weights: Tensor) -> float:
    """Share of source tokens whose attention summed over all output steps reaches `COVERED` (0.5):
    how much of the source the translation looked at."""
    return (weights.double().sum(dim=0) >= COVERED).double().mean().item()


MEASURES = {"entropy": entropy, "monotonicity": monotonicity, "coverage": coverage}


def mean_measures(attentions: list[Tensor]) -> dict[str, float]:
    """Each measure averaged over sentences; attentions: one `[tgt_len, src_len]` per sentence."""
    if not attentions:
        return {}
    return {name: sum(map(measure, attentions)) / len(attentions) for name, measure in MEASURES.items()}


def _average_ranks(values: Tensor) -> Tensor:
    """Ranks from 0, ties sharing their average rank (as Spearman's coefficient needs). [n] -> [n]."""
    less = (values[None, :] < values[:, None]).sum(dim=1)
    equal = (values[None, :] == values[:, None]).sum(dim=1)
    return less + (equal - 1) / 2


def _pearson(x: Tensor, y: Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    scale = math.sqrt((x * x).sum().item() * (y * y).sum().item())
    return 0.0 if scale == 0 else (x * y).sum().item() / scale
