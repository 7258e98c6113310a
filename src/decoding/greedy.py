"""Greedy search: every sentence of the batch takes its most probable next token at each step."""

import torch
from torch import Tensor

from src.decoding.hypothesis import Hypothesis
from src.decoding.lengths import constrain_eos, max_lengths, select_rows


@torch.inference_mode()
def greedy_search(
    model, src: Tensor, src_len: Tensor, max_len_a: float, max_len_b: int, min_len: int = 0
) -> list[list[Hypothesis]]:
    """Decode a batch greedily; returns one hypothesis per sentence (in a list, like beam search's n-best).

    src [batch, src_len] long, src_len [batch] long. Sentence i produces at most
    floor(max_len_a * src_len[i] + max_len_b) tokens, then <eos> is forced; <eos> is blocked before
    `min_len` tokens. `score` equals `log_prob` (greedy search has no penalties).

    A sentence that has ended leaves the batch: the decoder's cache and state keep only the rows of the
    sentences still going, so the last steps of a batch cost what its longest outputs need, not the whole
    batch. Host syncs: one before the loop (the length limits) and one per step (which sentences ended?).
    """
    enc = model.encode(src, src_len)
    cache, state = model.start_decoding(enc)
    batch, device = src.size(0), src.device
    limits = max_lengths(src_len, max_len_a, max_len_b)
    steps = max(limits) + 1  # the longest output: max tokens, then <eos>
    max_len = torch.tensor(limits, device=device)  # [rows]: of the sentences still decoding

    rows = torch.arange(batch, device=device)  # [rows]: which sentence each row of cache/state is
    output = src.new_full((batch, steps), model.pad_id)  # [batch, steps]
    log_prob = torch.zeros(batch, device=device)  # [batch]
    attention: Tensor | None = None  # [batch, heads, steps, src_len], shaped at the first step
    tokens = src.new_full((batch, 1), model.bos_id)  # [rows, 1]: the last token of each sentence
    for step in range(steps):
        step_log_probs, attn_weights, state = model.decode_step(tokens, cache, state)  # [rows, vocab]
        step_log_probs = constrain_eos(step_log_probs, step, min_len, max_len, model.eos_id, min(limits))
        best_log_prob, best = step_log_probs.max(dim=-1)  # [rows], [rows]
        best = best.masked_fill(step >= max_len, model.eos_id)
        output[rows, step] = best
        log_prob[rows] += best_log_prob
        if attn_weights is not None:
            if attention is None:
                attention = attn_weights.new_zeros(batch, attn_weights.size(1), steps, attn_weights.size(3))
            attention[rows, :, step] = attn_weights[:, :, 0]
        going = (best != model.eos_id).nonzero().squeeze(1)  # [still going]: the step's host sync
        if len(going) == 0:
            break
        if len(going) < len(rows):
            rows, max_len = rows[going], max_len[going]
            cache, state = select_rows(cache, going), select_rows(state, going)
        tokens = best[going].unsqueeze(1)

    output = output.cpu()
    lengths = (output == model.eos_id).int().argmax(dim=1).tolist()  # tokens before the first <eos>
    attention = None if attention is None else attention.float().cpu()
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
