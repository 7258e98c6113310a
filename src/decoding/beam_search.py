"""Beam search over all sentences of a batch at once, with n-best lists and the GNMT penalties.

Wu et al. (2016), "Google's Neural Machine Translation System", section 7, rank a finished hypothesis Y of
a source X by

    score(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y)
    lp(Y)       = ((5 + |Y|) / 6) ** alpha                    |Y| counts the output tokens and <eos>
    cp(X; Y)    = beta * sum_i log(min(sum_j a_ij, 1.0))      i: real source tokens, j: output rows

where a_ij is the attention of output row j (the <eos> row included) on source token i, averaged over
heads; cp is 0 for a model without attention. Coverage is floored at the smallest positive float, so a
source token that got no attention at all costs beta * log(tiny) (about -87 beta) instead of -inf.
All live hypotheses of a step have the same length, so live beams are ranked by log-probability alone;
the penalties enter when a hypothesis ends.

One step, for every sentence (tensors are [batch * beam, ...], beam k of sentence b in row b * beam + k):
  1. score all beam * vocab continuations and take the best 2 * beam. Each beam has one <eos>
     continuation, so at most `beam` candidates end and at least `beam` go on;
  2. candidates among the best `beam` that end in <eos> are finished: they are set aside, with their
     penalised score, in the sentence's finished list;
  3. the best `beam` candidates that do not end fill the beam again, and the decoder state, the tokens
     and the attention rows are reordered to follow their parents (`index_select(0, parent)`).
At the first step only beam 0 is live (the others score -inf), so the beam never holds duplicates.

Stopping rules: a sentence is done at the first step where
  - no live hypothesis can still beat its `n_best`-th finished one (an exact bound, so the n-best list is
    the one the rules below would return: a live log-probability only falls, a live hypothesis can at most
    reach lp(max length) and cp <= 0, so none can score above (its best live log-prob) / lp(max length + 1),
    <eos> included; with alpha = 0 this is OpenNMT-py's "the top of the beam has ended"), or
  - `beam_size` of its hypotheses have finished (fairseq's rule; with alpha > 0 a longer hypothesis could
    still have scored higher), or
  - it reaches its max length, where <eos> is forced and every live hypothesis finishes as it is.

Host syncs: the finished lists stay on the device, as a buffer of the best `beam` finished hypotheses
per sentence, merged with each step's by one top-k. So a step needs one sync (which sentences are done?).
A sentence that is done leaves the batch: its hypotheses come to the host, and the cache, the state and
the buffers keep only the rows of the sentences still searching, so the last steps of a batch cost what
its longest outputs need, not the whole batch.
"""

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from src.decoding.hypothesis import Hypothesis
from src.decoding.lengths import constrain_eos, max_lengths, select_rows


@torch.inference_mode()
def beam_search(
    model,
    src: Tensor,
    src_len: Tensor,
    beam_size: int,
    n_best: int = 1,
    length_penalty: float = 0.0,
    coverage_penalty: float = 0.0,
    min_len: int = 0,
    *,
    max_len_a: float,
    max_len_b: int,
) -> list[list[Hypothesis]]:
    """Decode a batch with beam search; returns up to `n_best` hypotheses per sentence, best score first.

    src [batch, src_len] long, src_len [batch] long. `length_penalty` is alpha and `coverage_penalty` is
    beta of the formulas above. Sentence i produces at most floor(max_len_a * src_len[i] + max_len_b)
    tokens; <eos> is blocked before `min_len` tokens. Fewer than `n_best` come back only when fewer
    hypotheses have a finite log-probability (a tiny vocabulary, or a model that forbids <eos>).
    """
    batch, beam, device = src.size(0), beam_size, src.device
    enc = model.encode(src, src_len)
    cache, state = model.start_decoding(enc)
    cache = {name: value.repeat_interleave(beam, dim=0) for name, value in cache.items()}
    state = {name: value.repeat_interleave(beam, dim=0) for name, value in state.items()}
    limits = max_lengths(src_len, max_len_a, max_len_b)
    steps = max(limits) + 1  # the longest hypothesis: max tokens, then <eos>
    real_src_len = enc.mask.sum(dim=1).tolist()
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]

    # per sentence still searching (b of them; `sentences` are their indices in the batch) and per row
    # (b * beam: beam k of the i-th sentence in row i * beam + k)
    sentences = torch.arange(batch, device=device)  # [b]
    mask = enc.mask  # [b, src_len]
    sentence_max_len = torch.tensor(limits, device=device)  # [b]
    max_len = sentence_max_len.repeat_interleave(beam)  # [b * beam]
    scores = torch.full((batch, beam), -math.inf, device=device)  # [b, beam]: live log-probs
    scores[:, 0] = 0.0
    tokens = src.new_full((batch * beam, steps), model.pad_id)  # [b * beam, steps]
    attention: Tensor | None = None  # [b * beam, heads, steps, src_len], shaped at the first step
    last = src.new_full((batch * beam, 1), model.bos_id)  # [b * beam, 1]
    finished = _Finished.empty(batch, beam, steps, model.pad_id, device)
    ranks = torch.arange(2 * beam, device=device)  # [2 * beam]

    for step in range(steps):
        log_probs, attn_weights, state = model.decode_step(last, cache, state)  # [b * beam, vocab]
        log_probs = constrain_eos(log_probs, step, min_len, max_len, model.eos_id, min(limits))
        if attn_weights is not None:
            if attention is None:
                heads, src_positions = attn_weights.size(1), attn_weights.size(3)
                attention = attn_weights.new_zeros(batch * beam, heads, steps, src_positions)
            attention[:, :, step] = attn_weights[:, :, 0]

        live_batch, vocab = scores.size(0), log_probs.size(1)
        candidates = (scores.view(-1, 1) + log_probs).view(live_batch, beam * vocab)
        cand_scores, cand_index = candidates.topk(2 * beam, dim=1)  # [b, 2 * beam]
        cand_token = cand_index % vocab  # [b, 2 * beam]
        first_row = torch.arange(live_batch, device=device).unsqueeze(1) * beam  # [b, 1]
        cand_parent = cand_index // vocab + first_row  # [b, 2 * beam]: rows of [b * beam, ...]
        cand_eos = cand_token == model.eos_id  # [b, 2 * beam]

        ends = cand_eos[:, :beam] & cand_scores[:, :beam].isfinite()  # [b, beam]
        parent = cand_parent[:, :beam].reshape(-1)  # [b * beam]
        ended_attention = None
        if attention is not None:
            ended_attention = attention.index_select(0, parent).view(live_batch, beam, *attention.shape[1:])
        ended_log_prob = cand_scores[:, :beam]  # [b, beam]
        finished.add(
            ends,
            score=_penalised(
                ended_log_prob, step + 1, ended_attention, mask, length_penalty, coverage_penalty
            ),
            log_prob=ended_log_prob,
            length=step,
            tokens=tokens.index_select(0, parent).view(live_batch, beam, steps),
            attention=ended_attention,
        )
        # the best that a hypothesis still live can end with (cand_scores are sorted, at least `beam` go on)
        best_live = cand_scores.masked_fill(cand_eos, -math.inf).amax(dim=1)  # [b]
        if length_penalty > 0:  # log-probs are <= 0: the longest hypothesis is divided by the most
            best_live = best_live / ((5 + sentence_max_len + 1) / 6) ** length_penalty
        nth_best = finished.score[:, n_best - 1]  # [b]: -inf until n_best have finished
        beaten = nth_best.isfinite() & (nth_best >= best_live)  # [b]
        done = beaten | (finished.count >= beam) | (step >= sentence_max_len)  # [b]
        going = (~done).nonzero().squeeze(1)  # [b']: the step's host sync
        if len(going) < live_batch:
            done_index = done.nonzero().squeeze(1)
            done_sentences = sentences[done_index].tolist()
            hypotheses = finished.select(done_index).to_hypotheses(
                n_best, [real_src_len[i] for i in done_sentences]
            )
            for i, nbest in zip(done_sentences, hypotheses, strict=True):
                results[i] = nbest
            if len(going) == 0:
                break

        # the first `beam` candidates in rank order that do not end: <eos> ones are pushed behind the rest
        live = (cand_eos.long() * 2 * beam + ranks).topk(beam, dim=1, largest=False).indices  # [b, beam]
        scores = cand_scores.gather(1, live)
        parent = cand_parent.gather(1, live).view(-1)  # [b * beam]
        next_token = cand_token.gather(1, live).view(-1)  # [b * beam]
        if len(going) < live_batch:  # keep only the sentences still searching
            rows = (going.unsqueeze(1) * beam + torch.arange(beam, device=device)).view(-1)  # [b' * beam]
            sentences, mask, sentence_max_len = sentences[going], mask[going], sentence_max_len[going]
            max_len, scores, finished = max_len[rows], scores[going], finished.select(going)
            cache = select_rows(cache, rows)
            parent, next_token = parent[rows], next_token[rows]
        tokens = tokens.index_select(0, parent)
        tokens[:, step] = next_token
        if attention is not None:
            attention = attention.index_select(0, parent)
        state = select_rows(state, parent)
        last = next_token.unsqueeze(1)

    return results


def _penalised(
    log_prob: Tensor, length: int, attention: Tensor | None, mask: Tensor, alpha: float, beta: float
) -> Tensor:
    """score = log_prob / lp + cp for hypotheses of `length` outputs (<eos> included). [batch, beam]

    log_prob [batch, beam]; attention [batch, beam, heads, steps, src_len] (rows past `length` are 0);
    mask [batch, src_len] bool, True = real source token.
    """
    score = log_prob / ((5 + length) / 6) ** alpha if alpha > 0 else log_prob
    if beta > 0 and attention is not None:
        coverage = attention.float().mean(dim=2).sum(dim=2)  # [batch, beam, src_len]
        coverage = coverage.clamp(min=torch.finfo(coverage.dtype).tiny, max=1.0)
        log_coverage = coverage.log().masked_fill(~mask.unsqueeze(1), 0.0)
        score = score + beta * log_coverage.sum(dim=2)
    return score


@dataclass
class _Finished:
    """The best `beam` finished hypotheses of each sentence, on the device, best first."""

    score: Tensor  # [batch, beam]: penalised score, -inf in an empty slot
    log_prob: Tensor  # [batch, beam]
    length: Tensor  # [batch, beam] long: tokens before <eos>
    tokens: Tensor  # [batch, beam, steps] long
    attention: Tensor | None  # [batch, beam, heads, steps, src_len], shaped by the first hypothesis
    count: Tensor  # [batch] long: how many have finished, including those that no longer fit

    @classmethod
    def empty(cls, batch: int, beam: int, steps: int, pad_id: int, device: torch.device) -> "_Finished":
        return cls(
            score=torch.full((batch, beam), -math.inf, device=device),
            log_prob=torch.full((batch, beam), -math.inf, device=device),
            length=torch.zeros(batch, beam, dtype=torch.long, device=device),
            tokens=torch.full((batch, beam, steps), pad_id, dtype=torch.long, device=device),
            attention=None,
            count=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def add(
        self,
        ends: Tensor,
        score: Tensor,
        log_prob: Tensor,
        length: int,
        tokens: Tensor,
        attention: Tensor | None,
    ) -> None:
        """Merge the candidates marked by `ends` [batch, beam] into the lists, keeping the best `beam`.

        score, log_prob [batch, beam]; tokens [batch, beam, steps]; attention [batch, beam, heads, steps,
        src_len] or None; all candidates have `length` tokens.
        """
        beam = ends.size(1)
        if attention is not None and self.attention is None:
            self.attention = torch.zeros_like(attention)
        merged_score, keep = torch.cat([self.score, score.masked_fill(~ends, -math.inf)], dim=1).topk(
            beam, dim=1
        )
        self.score = merged_score
        self.log_prob = _keep(self.log_prob, log_prob, keep)
        self.length = _keep(self.length, torch.full_like(self.length, length), keep)
        self.tokens = _keep(self.tokens, tokens, keep)
        if attention is not None:
            self.attention = _keep(self.attention, attention, keep)
        self.count = self.count + ends.sum(dim=1)

    def select(self, index: Tensor) -> "_Finished":
        """The lists of the sentences `index` [n] only."""
        values = (getattr(self, field.name) for field in dataclasses.fields(self))
        return _Finished(*(None if value is None else value.index_select(0, index) for value in values))

    def to_hypotheses(self, n_best: int, src_len: list[int]) -> list[list[Hypothesis]]:
        """The best `n_best` of each sentence as `Hypothesis` objects on the host (one transfer)."""
        score, log_prob = self.score[:, :n_best].tolist(), self.log_prob[:, :n_best].tolist()
        length, tokens = self.length[:, :n_best].tolist(), self.tokens[:, :n_best].cpu()
        attention = None if self.attention is None else self.attention[:, :n_best].float().cpu()
        return [
            [
                Hypothesis(
                    tokens=tokens[i, k, : length[i][k]].tolist(),
                    score=score[i][k],
                    log_prob=log_prob[i][k],
                    attention=None
                    if attention is None
                    else attention[i, k, :, : length[i][k] + 1, : src_len[i]].clone(),
                )
                for k in range(len(score[i]))
                if math.isfinite(score[i][k])
            ]
            for i in range(len(score))
        ]


def _keep(old: Tensor, new: Tensor, keep: Tensor) -> Tensor:
    """Entries `keep` [batch, beam] of `old` and `new` ([batch, beam, ...]) side by side on dim 1."""
    index = keep.view(*keep.shape, *[1] * (old.dim() - 2))
    return torch.take_along_dim(torch.cat([old, new], dim=1), index, dim=1)
