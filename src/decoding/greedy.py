"""Greedy search: every sentence of the batch takes its most probable next token at each step."""

import torch
from torch import Tensor

from src.decoding.hypothesis import Hypothesis
from src.decoding.lengths import constrain_eos, max_lengths


@torch.inference_mode()
def greedy_search(
    model, src: Tensor, src_len: Tensor, max_len_a: float, max_len_b: int, min_len: int = 0
) -> list[list[Hypothesis]]:
    """Decode a batch greedily; returns one hypothesis per sentence (in a list, like beam search's n-best).

    src [batch, src_len] long, src_len [batch] long. Sentence i produces at most
    floor(max_len_a * src_len[i] + max_len_b) tokens, then <eos> is forced; <eos> is blocked before
    `min_len` tokens. `score` equals `log_prob` (greedy search has no penalties).

    The whole batch advances together; a finished sentence is fed <pad> until the others end, and its
    outputs are ignored. Host syncs: one before the loop (the length limits) and one per step (have all
    sentences ended?), which lets a batch of short outputs stop early.
    """
    enc = model.encode(src, src_len)
    cache, state = model.start_decoding(enc)
    batch = src.size(0)
    limits = max_lengths(src_len, max_len_a, max_len_b)
    max_len = torch.tensor(limits, device=src.device)  # [batch]

    tokens = src.new_full((batch, 1), model.bos_id)  # [batch, 1]: the last token of each sentence
    log_prob = torch.zeros(batch, device=src.device)  # [batch]
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)  # [batch]
    outputs: list[Tensor] = []  # each [batch]
    attn_rows: list[Tensor] = []  # each [batch, heads, 1, src_len]
    for step in range(max(limits) + 1):
        step_log_probs, attn_weights, state = model.decode_step(tokens, cache, state)  # [batch, vocab]
        step_log_probs = constrain_eos(step_log_probs, step, min_len, max_len, model.eos_id)
        best_log_prob, best = step_log_probs.max(dim=-1)  # [batch], [batch]
        log_prob = log_prob + best_log_prob.masked_fill(finished, 0.0)
        best = best.masked_fill(step >= max_len, model.eos_id).masked_fill(finished, model.pad_id)
        outputs.append(best)
        if attn_weights is not None:
            attn_rows.append(attn_weights)
        finished = finished | (best == model.eos_id)
        tokens = best.unsqueeze(1)
        if finished.all():
            break

    output = torch.stack(outputs, dim=1).cpu()  # [batch, steps]
    lengths = (output == model.eos_id).int().argmax(dim=1).tolist()  # tokens before the first <eos>
    attention = (
        torch.cat(attn_rows, dim=2).float().cpu() if attn_rows else None
    )  # [batch, heads, steps, src_len]
    real_src_len = enc.mask.sum(dim=1).tolist()
    return [
        [
            Hypothesis(
                tokens=output[i, :length].tolist(),
                score=score,
                log_prob=score,
                attention=None
                if attention is None
                else attention[i, :, : length + 1, : real_src_len[i]].clone(),
            )
        ]
        for i, (length, score) in enumerate(zip(lengths, log_prob.tolist(), strict=True))
    ]
