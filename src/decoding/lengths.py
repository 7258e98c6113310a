"""Length limits and batch bookkeeping shared by greedy and beam search."""

import math

import torch
from torch import Tensor


def max_lengths(src_len: Tensor, max_len_a: float, max_len_b: int) -> list[int]:
    """The most tokens (<eos> excluded) each sentence may produce: floor(a * src_len + b), at least 0.

    Computed on the host (one transfer per batch), because the search loop needs the largest as its bound.
    """
    return [max(0, math.floor(max_len_a * n + max_len_b)) for n in src_len.tolist()]


def constrain_eos(
    log_probs: Tensor, step: int, min_len: int, max_len: Tensor, eos_id: int, shortest_max_len: int = 0
) -> Tensor:
    """Block <eos> before `min_len` tokens and force it once a hypothesis has `max_len` tokens.

    log_probs [rows, vocab]; max_len [rows]; `step` tokens have been produced so far. The allowed
    entries keep their log-probabilities, so a forced <eos> costs what the model says it costs. When the
    two limits clash (min_len > max length) the max length wins: every hypothesis ends.
    `shortest_max_len` (at most the smallest of `max_len`, known on the host) skips the work on the steps
    where no hypothesis can be at its limit.
    """
    allowed = log_probs
    if step < min_len:
        allowed = log_probs.clone()
        allowed[:, eos_id] = -math.inf
    if step < shortest_max_len:
        return allowed
    only_eos = torch.full_like(log_probs, -math.inf)  # [rows, vocab]
    only_eos[:, eos_id] = log_probs[:, eos_id]
    at_limit = (step >= max_len).unsqueeze(1)  # [rows, 1]
    return torch.where(at_limit, only_eos, allowed)


def select_rows(tensors: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    """The rows `index` (dim 0) of every tensor of a decoder cache or state."""
    return {name: value.index_select(0, index) for name, value in tensors.items()}
