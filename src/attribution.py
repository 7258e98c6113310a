"""Attention against attribution: does attention show which source tokens the model uses?

Each output token y_t of the model's own translation (the `decode.*` search, greedy by default), `<eos>`
included, is read again with the translation fed in (teacher forcing), and three views of the source
tokens x_1..x_S are set side by side:

* attention a_t `[S]`: the cross-attention of the step that predicts y_t, as `Seq2Seq.forward` returns it
  (the last decoder layer), averaged over heads;
* attribution r_t `[S]` of f_t = log p(y_t | x, y_<t) with respect to the source embeddings e_j (`[emb]`
  each; Captum computes the gradients):

      input x gradient (Shrikumar et al. 2016):           e_j * df_t/de_j
      integrated gradients (Sundararajan et al. 2017):   (e_j - e'_j) * int_0^1 df_t(e' + alpha (e - e'))/de_j dalpha

  with the baseline e' = 0 (every source embedding zero; the sentence's length and mask are kept), the
  integral by Gauss-Legendre quadrature with `ig_steps` points. Each token's `[emb]` vector is summed to one
  signed score (`aggregate="sum"`: then integrated gradients are complete, sum_j r_tj = f_t(e) - f_t(0), and
  Captum's convergence delta is what the quadrature misses), or reduced to its L2 norm (`aggregate="l2"`).
  The comparisons below use the magnitude |r_tj|: a token that lowers the probability a lot matters as much
  as one that raises it;
* erasure: d_tj = p(y_t | x, y_<t) - p(y_t | x without x_j, y_<t), the drop of the token's probability when
  source token j is replaced by `<unk>` (length, positions and mask unchanged, the prefix y_<t kept).

Per output token: Spearman's rank correlation between a_t and |r_t| (left out where either is constant,
e.g. a one-token source); whether their top source token agrees; and the drop d when the top token by
attention is erased, when the top token by attribution is erased, and on average over the source tokens
(a token chosen at random). Averaged over every output token of the sentences analysed.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from src.errors import ConfigError

METHODS = ("integrated_gradients", "input_x_gradient")
AGGREGATES = ("sum", "l2")
METHOD_NAMES = {"integrated_gradients": "integrated gradients", "input_x_gradient": "input × gradient"}


def require_captum() -> Any:
    """`captum.attr`, or a clear error saying how to install it."""
    try:
        import captum.attr
    except ImportError as err:
        raise ConfigError(
            'python -m src.analyze attribution needs Captum, which is not installed: pip install -e ".[analysis]"'
        ) from err
    return captum.attr


@dataclass
class SentenceAttribution:
    """One sentence, S source tokens and T output tokens (the translation, then `<eos>`):

    src:       the source ids `[S]`
    output:    the output ids `[T]`, `<eos>` last
    log_probs: log p(y_t | x, y_<t) `[T]`
    attention: `[T, S]`, mean over heads; None for a model without attention
    scores:    per method, the attribution `[T, S]` (signed with `aggregate="sum"`)
    drops:     `[T, S]`: the drop of p(y_t) when source token j is replaced by `<unk>`
    ig_delta:  integrated gradients' convergence delta per output token `[T]` (None when not computed)
    """

    src: list[int]
    output: list[int]
    log_probs: Tensor
    attention: Tensor | None
    scores: dict[str, Tensor]
    drops: Tensor
    ig_delta: Tensor | None


def attribute_sentence(
    net: nn.Module,
    src: Sequence[int],
    tokens: Sequence[int],
    unk_id: int,
    methods: Sequence[str] = METHODS,
    ig_steps: int = 20,
    aggregate: str = "sum",
    batch_size: int | None = None,
) -> SentenceAttribution:
    """Attention, attribution and erasure for one sentence (see the module docstring): `src` the source ids,
    `tokens` the translation's ids (without `<bos>` and `<eos>`). `net` is a `Seq2Seq` (or anything with its
    `src_embedding`, `forward_embedded`, `pad_id`, `bos_id` and `eos_id`); `batch_size` bounds the rows of
    one forward pass (integrated gradients runs T x ig_steps of them; None: all at once)."""
    attr = require_captum()
    unknown = [method for method in methods if method not in METHODS]
    if unknown or aggregate not in AGGREGATES:
        raise ValueError(
            f"methods {list(methods)} must be among {METHODS}, aggregate {aggregate} in {AGGREGATES}"
        )
    device = next(net.parameters()).device
    src_ids = torch.tensor([list(src)], device=device)  # [1, S]
    tgt_in = torch.tensor([[net.bos_id, *tokens]], device=device)  # [1, T]
    tgt_out = torch.tensor([[*tokens, net.eos_id]], device=device)  # [1, T]
    output_len, src_len = tgt_out.size(1), src_ids.size(1)
    lengths = torch.tensor([src_len], device=device)  # [1]
    mask = src_ids != net.pad_id  # [1, S]

    def output_log_probs(src_emb: Tensor) -> Tensor:
        """src_emb `[batch, S, emb]` -> log p(y_t | x, y_<t) `[batch, T]`, the same translation in each row."""
        batch = src_emb.size(0)
        logits, _ = net.forward_embedded(
            src_emb, lengths.expand(batch), mask.expand(batch, -1), tgt_in.expand(batch, -1)
        )
        log_probs = logits.float().log_softmax(dim=-1)  # [batch, T, vocab]
        return log_probs.gather(2, tgt_out.expand(batch, -1).unsqueeze(2)).squeeze(2)

    was_training = net.training
    net.eval()
    try:
        # cuDNN's recurrent layers differentiate only in training mode; the plain kernels in any mode
        with torch.backends.cudnn.flags(enabled=False):
            with torch.no_grad():
                src_emb = net.src_embedding(src_ids)  # [1, S, emb]
                logits, attn_weights = net.forward_embedded(src_emb, lengths, mask, tgt_in)
                log_probs = output_log_probs(src_emb)[0]  # [T]
                erased = src_ids.repeat(src_len, 1)  # [S, S]: row j without source token j
                erased.fill_diagonal_(unk_id)
                erased_log_probs = torch.cat(
                    [output_log_probs(net.src_embedding(rows)) for rows in _chunks(erased, batch_size)]
                )  # [S, T]
            inputs = (
                src_emb.expand(output_len, -1, -1).contiguous().requires_grad_()
            )  # [T, S, emb]: row t explains y_t
            targets = list(range(output_len))
            scores, ig_delta = {}, None
            for method in methods:
                if method == "integrated_gradients":
                    attributions, delta = attr.IntegratedGradients(output_log_probs).attribute(
                        inputs,
                        baselines=torch.zeros_like(inputs),
                        target=targets,
                        n_steps=ig_steps,
                        internal_batch_size=batch_size,
                        return_convergence_delta=True,
                    )
                    ig_delta = delta.detach().float().cpu()
                else:
                    attributions = attr.InputXGradient(output_log_probs).attribute(inputs, target=targets)
                scores[method] = token_scores(attributions.detach(), aggregate).cpu()
    finally:
        net.train(was_training)
    attention = None if attn_weights is None else attn_weights[0].float().mean(dim=0).cpu()  # [T, S]
    drops = (log_probs.exp().unsqueeze(0) - erased_log_probs.exp()).T.cpu()  # [T, S]
    return SentenceAttribution(
        list(src), [*tokens, net.eos_id], log_probs.cpu(), attention, scores, drops, ig_delta
    )


def token_scores(attributions: Tensor, aggregate: str = "sum") -> Tensor:
    """Attributions `[T, S, emb]` -> one score per source token `[T, S]`: the sum over the embedding
    dimension (signed), or its L2 norm."""
    if aggregate == "sum":
        return attributions.float().sum(dim=-1)
    if aggregate == "l2":
        return attributions.float().norm(dim=-1)
    raise ValueError(f"aggregate={aggregate} is not one of {AGGREGATES}")


def spearman(x: Tensor, y: Tensor) -> float:
    """Spearman's rank correlation of two `[n]` tensors (tied values share their mean rank); NaN when
    either is constant (the correlation is undefined)."""
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = rx.norm() * ry.norm()
    return math.nan if norm == 0 else float((rx * ry).sum() / norm)


def _ranks(x: Tensor) -> Tensor:
    """The ranks (0-based, float64) of `[n]` values; equal values get the mean of their ranks."""
    _, inverse, counts = torch.unique(x.double(), return_inverse=True, return_counts=True)
    first = counts.cumsum(dim=0) - counts  # the first rank of each distinct value, in ascending order
    return (first + (counts - 1) / 2).double()[inverse]


def compare_tokens(attention: Tensor | None, scores: Tensor, drops: Tensor) -> list[dict[str, float]]:
    """One row per output token of a sentence: attention `[T, S]` (or None), attribution scores `[T, S]`
    and erasure drops `[T, S]` -> spearman, top_agrees (1.0 or 0.0), drop_attention (the drop when the top
    token by attention is erased), drop_attribution (the top token by |attribution|), drop_random (the mean
    over the source tokens). Without attention, the attention keys are left out."""
    magnitude = scores.abs()
    top_attribution = magnitude.argmax(dim=1)  # [T]
    rows = []
    for t in range(scores.size(0)):
        row = {
            "drop_attribution": float(drops[t, top_attribution[t]]),
            "drop_random": float(drops[t].mean()),
        }
        if attention is not None:
            top_attention = attention[t].argmax()
            row["spearman"] = spearman(attention[t], magnitude[t])
            row["top_agrees"] = float(top_attention == top_attribution[t])
            row["drop_attention"] = float(drops[t, top_attention])
        rows.append(row)
    return rows


def summarize(rows: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The rows of `compare_tokens` over every output token -> means (None where nothing is defined):
    tokens, spearman (over the tokens where it is defined: spearman_tokens), top_agreement, and the erasure
    drops, with the shares of tokens where erasing the top token by attribution costs more than erasing the
    one by attention (attribution_larger) and less (attention_larger)."""
    with_attention = [row for row in rows if "spearman" in row]
    correlations = [row["spearman"] for row in with_attention if not math.isnan(row["spearman"])]
    summary: dict[str, Any] = {
        "tokens": len(rows),
        "spearman": _mean(correlations),
        "spearman_tokens": len(correlations),
        "top_agreement": _mean([row["top_agrees"] for row in with_attention]),
        "erasure": {
            "attention": _mean([row["drop_attention"] for row in with_attention]),
            "attribution": _mean([row["drop_attribution"] for row in rows]),
            "random": _mean([row["drop_random"] for row in rows]),
            "attribution_larger": _mean(
                [float(row["drop_attribution"] > row["drop_attention"]) for row in with_attention]
            ),
            "attention_larger": _mean(
                [float(row["drop_attribution"] < row["drop_attention"]) for row in with_attention]
            ),
        },
    }
    return summary


def format_summary_table(summaries: dict[str, dict[str, Any]]) -> str:
    """The `summarize` result of each method as a Markdown table (— where there is no attention)."""
    lines = [
        "| attribution | Spearman ρ (attention, attribution magnitude) | top token agrees | p drop, top by "
        "attention erased | p drop, top by attribution erased | p drop, random token erased | "
        "attribution's drop larger / attention's larger |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, summary in summaries.items():
        erasure = summary["erasure"]
        larger = (
            "—"
            if erasure["attribution_larger"] is None
            else f"{erasure['attribution_larger']:.0%} / {erasure['attention_larger']:.0%}"
        )
        cells = [
            METHOD_NAMES.get(method, method),
            _cell(summary["spearman"], ".3f"),
            _cell(summary["top_agreement"], ".0%"),
            _cell(erasure["attention"], ".4f"),
            _cell(erasure["attribution"], ".4f"),
            _cell(erasure["random"], ".4f"),
            larger,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else f"{value:{fmt}}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _chunks(rows: Tensor, size: int | None) -> list[Tensor]:
    return [rows] if size is None else list(rows.split(size))
