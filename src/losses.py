"""Training losses: token-level cross-entropy and the optional attention terms.

All functions take the target padding mask explicitly and return sums, so the caller decides the
normalisation (per target token of the batch, or of a whole gradient-accumulation window).
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def token_nll(logits: Tensor, tgt_out: Tensor, pad_id: int, label_smoothing: float = 0.0) -> Tensor:
    """Summed cross-entropy over real target tokens.

    logits [batch, tgt_len, vocab], tgt_out [batch, tgt_len] -> scalar (sum, float32).
    """
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        tgt_out.flatten(),
        ignore_index=pad_id,
        reduction="sum",
        label_smoothing=label_smoothing,
    )


def _mean_heads(attn_weights: Tensor) -> Tensor:
    """[batch, heads, tgt_len, src_len] -> [batch, tgt_len, src_len] in float32."""
    return attn_weights.float().mean(dim=1)


def coverage_loss(attn_weights: Tensor, tgt_mask: Tensor) -> Tensor:
    """See et al. (2017): sum over target steps t and source positions i of min(a_ti, c_ti),
    where c_t = sum_{t' < t} a_t' is the coverage before step t. Penalises attending again to source
    words that were already attended to.

    attn_weights [batch, heads, tgt_len, src_len], tgt_mask [batch, tgt_len] (True = real) -> scalar sum.
    """
    attn = _mean_heads(attn_weights)
    coverage = attn.cumsum(dim=1) - attn
    per_step = torch.minimum(attn, coverage).sum(dim=-1)  # [batch, tgt_len]
    return (per_step * tgt_mask).sum()


def attention_entropy(attn_weights: Tensor, tgt_mask: Tensor) -> Tensor:
    """Summed entropy -sum_i a_ti log a_ti of each target step's attention distribution.

    Adding it to the loss with a positive weight sharpens attention. Padded source positions have
    weight exactly 0 and contribute 0 (0 log 0 = 0).
    attn_weights [batch, heads, tgt_len, src_len], tgt_mask [batch, tgt_len] -> scalar sum.
    """
    attn = _mean_heads(attn_weights)
    entropy = -(attn * attn.clamp_min(torch.finfo(attn.dtype).tiny).log()).sum(dim=-1)
    return (entropy * tgt_mask).sum()
