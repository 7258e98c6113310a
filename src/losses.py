"""Training losses: token-level cross-entropy and the optional attention terms (coverage, entropy,
guided alignment).

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


def alignment_loss(attn: Tensor, target: Tensor) -> Tensor:
    """Guided alignment (Liu et al. 2016; Garg et al. 2019): the cross-entropy between each target step's
    attention and its gold distribution, less the gold's own entropy, i.e. KL(target || attention), summed
    over the steps that have gold links (rows of zeros have none). 0 exactly when the attention equals the
    target distribution, positive otherwise; the gradient is the cross-entropy's.

    attn [batch, tgt_len, src_len] (one head's weights), target [batch, tgt_len, src_len] (rows sum to 1 or
    0) -> scalar sum.
    """
    attn, target = attn.float(), target.float()
    tiny = torch.finfo(attn.dtype).tiny
    return (target * (target.clamp_min(tiny).log() - attn.clamp_min(tiny).log())).sum()
