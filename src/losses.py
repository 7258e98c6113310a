"""Training losses: token-level cross-entropy and the optional attention terms (coverage, entropy,
guided alignment).

All functions take the target padding mask explicitly and return sums, so the caller decides the
normalisation (per target token of the batch, or of a whole gradient-accumulation window).
"""

import torch
from torch import Tensor

# the rows of logits handled together by token_cross_entropy: about 2 MiB of float32 per chunk, so that
# each chunk's passes (max, exp, sum, the gradient) read memory once and then run in the core's cache
CHUNK_BYTES = 2 * 1024 * 1024


class _TokenCrossEntropy(torch.autograd.Function):
    """The summed, optionally label-smoothed cross-entropy and the plain summed NLL, in one pass over the
    logits, with the gradient formed in the same pass (see `token_cross_entropy`)."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, pad_id: int, smoothing: float) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # an unused output (the NLL, usually) gets None, not zeros
        rows, vocab = logits.shape
        real = target != pad_id  # [rows]
        keep_grad = ctx.needs_input_grad[0]
        # gradient of the smoothed loss per real row: softmax - (1 - eps) onehot - eps / V (pad rows: 0)
        grad = torch.empty(rows, vocab, dtype=torch.float32, device=logits.device) if keep_grad else None
        log_z = torch.empty(rows, dtype=torch.float32, device=logits.device)  # log sum_v exp(x_v)
        mean_x = torch.empty_like(log_z) if smoothing else None
        step = rows if logits.is_cuda else max(1, CHUNK_BYTES // (4 * vocab))
        for start in range(0, rows, step):
            chunk = slice(start, start + step)
            x = logits[chunk].float()  # [chunk, vocab]
            x_max = x.amax(dim=1, keepdim=True)
            probs = torch.sub(x, x_max, out=grad[chunk]) if keep_grad else x - x_max
            total = probs.exp_().sum(dim=1, keepdim=True)
            log_z[chunk] = (x_max + total.log()).squeeze(1)
            if smoothing:
                mean_x[chunk] = x.mean(dim=1)
            # while the chunk is in cache: padded rows become 0 here, not in a pass of their own
            if keep_grad:
                is_real = real[chunk].unsqueeze(1)  # [chunk, 1]
                probs.mul_(is_real / total)
                if smoothing:
                    probs.sub_(is_real * (smoothing / vocab))
        x_target = logits.gather(1, target.unsqueeze(1)).squeeze(1).float()  # [rows]
        nll = ((log_z - x_target) * real).sum()
        if smoothing:  # -(1 - eps) log p_y - eps mean_v log p_v, as F.cross_entropy(label_smoothing=eps)
            loss = (1 - smoothing) * nll + smoothing * ((log_z - mean_x) * real).sum()
        else:
            loss = nll.clone()  # two outputs, two tensors
        if keep_grad:
            grad.scatter_add_(1, target.unsqueeze(1), ((smoothing - 1) * real).unsqueeze(1).float())
            ctx.save_for_backward(target, real)
            ctx.grad, ctx.smoothing, ctx.dtype = grad, smoothing, logits.dtype
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss: Tensor | None, grad_nll: Tensor | None):
        if ctx.grad is None:
            raise RuntimeError(
                "token_cross_entropy's backward ran twice (retain_graph=True): its gradient buffer is reused "
                "in place; compute the loss again for a second backward pass."
            )
        target, real = ctx.saved_tensors
        grad, ctx.grad = ctx.grad, None
        scale = sum(g for g in (grad_loss, grad_nll) if g is not None)
        grad.mul_(scale)  # d/dx of (grad_loss * loss + grad_nll * nll) when eps = 0
        if grad_nll is not None and ctx.smoothing:  # the NLL's gradient: softmax - onehot
            eps = grad_nll * ctx.smoothing
            grad.add_((eps / grad.size(1)) * real.unsqueeze(1))
            grad.scatter_add_(1, target.unsqueeze(1), (-eps * real).unsqueeze(1).to(grad.dtype))
        return grad.to(ctx.dtype), None, None, None


def token_cross_entropy(
    logits: Tensor, tgt_out: Tensor, pad_id: int, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy over real target tokens: (the training loss, with label smoothing eps,
    the NLL without it), each a float32 scalar.

        loss = sum_t -(1 - eps) log p(y_t) - eps * mean_v log p(v)   (F.cross_entropy's label smoothing)
        nll  = sum_t -log p(y_t)

    logits [batch, tgt_len, vocab] (any float dtype), tgt_out [batch, tgt_len]; positions whose target is
    `pad_id` count for nothing. Equal to two calls of `F.cross_entropy(..., ignore_index=pad_id,
    reduction="sum")`, but one pass: the logits are read in chunks that fit the cache, the log-partition and
    the gradient (softmax - target distribution) come from the same pass, and no log-probabilities, one-hot
    gradient or zero-filled buffer of the vocabulary's size are made. The backward pass only scales the
    gradient kept from the forward pass (in place: backward runs once per forward).
    """
    return _TokenCrossEntropy.apply(logits.flatten(0, 1), tgt_out.flatten(), pad_id, float(label_smoothing))


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
