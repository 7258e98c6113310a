"""Toy models with the decoding interface of `Seq2Seq` (`encode`, `start_decoding`, `decode_step`).

Search is tested against these, not the real models: `RandomToyModel` is a small random attention GRU,
`TableToyModel` reads its probabilities and attention from a hand-written table.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

PAD, UNK, BOS, EOS = 0, 1, 2, 3
A, B = 4, 5

# Greedy takes A (0.6), then <eos> (0.4): p = 0.24. The best sequence is B <eos>: p = 0.4 * 0.9 = 0.36.
GREEDY_TRAP = {(): {A: 0.6, B: 0.4}, (A,): {EOS: 0.4, A: 0.3, B: 0.3}, (B,): {EOS: 0.9, A: 0.05, B: 0.05}}


@dataclass
class ToyEncoderOutput:
    memory: Tensor  # [batch, src_len, hidden]
    mask: Tensor  # [batch, src_len] bool, True = real token
    final: Tensor  # [batch, hidden]


def length_mask(src_len: Tensor, max_len: int) -> Tensor:
    """[batch, max_len] bool, True = real token."""
    return torch.arange(max_len).unsqueeze(0) < src_len.unsqueeze(1)


class RandomToyModel(nn.Module):
    """A random conditional GRU with multi-head dot-product attention over an embedded source.

    The next-token distribution depends on the source and, through the GRU state, on the whole prefix.
    Padding changes nothing: the encoder works position by position and padded positions get no
    attention. <pad>, <unk> and <bos> are never produced (log-prob -inf). `eos_bias` is added to the
    <eos> logit (-inf forbids <eos>); `sharpness` scales the logits (higher = more peaked). Weights are drawn from `seed`.
    """

    bos_id, eos_id, pad_id = BOS, EOS, PAD

    def __init__(
        self,
        seed: int = 0,
        vocab_size: int = 12,
        hidden: int = 16,
        heads: int = 2,
        eos_bias: float = 0.0,
        sharpness: float = 3.0,
    ):
        super().__init__()
        self.heads, self.eos_bias, self.sharpness = heads, eos_bias, sharpness
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab_size, hidden)
            self.encoder = nn.Linear(hidden, hidden)
            self.cell = nn.GRUCell(hidden, hidden)
            self.query = nn.Linear(hidden, hidden)
            self.out = nn.Linear(2 * hidden, vocab_size)
        self.eval()

    def encode(self, src: Tensor, src_len: Tensor) -> ToyEncoderOutput:
        mask = length_mask(src_len, src.size(1))
        memory = torch.tanh(self.encoder(self.embed(src))) * mask.unsqueeze(2)  # [batch, src_len, hidden]
        final = memory.sum(dim=1) / src_len.unsqueeze(1)
        return ToyEncoderOutput(memory, mask, final)

    def start_decoding(self, enc: ToyEncoderOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {"memory": enc.memory, "mask": enc.mask}, {"hidden": enc.final}

    def decode_step(
        self, tokens: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        hidden = self.cell(self.embed(tokens[:, 0]), state["hidden"])  # [batch, hidden]
        batch, src_len, size = cache["memory"].shape
        head_size = size // self.heads
        keys = cache["memory"].view(batch, src_len, self.heads, head_size).transpose(1, 2)  # [b, h, s, d]
        query = self.query(hidden).view(batch, self.heads, 1, head_size)  # [batch, heads, 1, head_size]
        scores = query @ keys.transpose(2, 3) / math.sqrt(head_size)  # [batch, heads, 1, src_len]
        scores = scores.masked_fill(~cache["mask"][:, None, None, :], torch.finfo(scores.dtype).min)
        attn_weights = scores.softmax(dim=-1)
        context = (attn_weights @ keys).view(batch, size)  # [batch, hidden]
        logits = self.sharpness * self.out(torch.cat([hidden, context], dim=1))  # [batch, vocab]
        logits[:, EOS] += self.eos_bias
        logits[:, [PAD, UNK, BOS]] = -math.inf
        return logits.log_softmax(dim=-1), attn_weights, {"hidden": hidden}


class TableToyModel:
    """Next-token probabilities and attention read from tables keyed by the prefix (tokens after <bos>).

    `probs[prefix]` maps tokens to probabilities (the rest get 0); a prefix not in the table ends: <eos>
    has probability 1. `attention[prefix]` is the attention row (one weight per source token) of the
    step that follows `prefix`; without it the row is uniform. `attention=None` makes a model without
    attention. The state holds the whole prefix ([batch, steps] token ids), so it must follow the beams.
    `calls` counts the decoding steps run.
    """

    bos_id, eos_id, pad_id = BOS, EOS, PAD

    def __init__(
        self,
        probs: dict[tuple[int, ...], dict[int, float]],
        attention: dict[tuple[int, ...], list[float]] | None = None,
        vocab_size: int = 8,
    ):
        self.probs, self.attention, self.vocab_size = probs, attention, vocab_size
        self.calls = 0

    def encode(self, src: Tensor, src_len: Tensor) -> ToyEncoderOutput:
        batch, src_len_max = src.shape
        return ToyEncoderOutput(
            torch.zeros(batch, src_len_max, 1), length_mask(src_len, src_len_max), torch.zeros(batch, 1)
        )

    def start_decoding(self, enc: ToyEncoderOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {"mask": enc.mask}, {"prefix": torch.zeros(enc.mask.size(0), 0, dtype=torch.long)}

    def decode_step(
        self, tokens: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        self.calls += 1
        prefix = torch.cat([state["prefix"], tokens], dim=1)  # [batch, steps], <bos> first
        mask = cache["mask"]
        probs = torch.zeros(prefix.size(0), self.vocab_size)
        weights = mask.float() / mask.sum(dim=1, keepdim=True)  # [batch, src_len]: uniform
        for row, key in enumerate(tuple(p[1:]) for p in prefix.tolist()):
            for token, p in self.probs.get(key, {EOS: 1.0}).items():
                probs[row, token] = p
            if self.attention is not None and key in self.attention:
                weights[row] = 0.0
                weights[row, : len(self.attention[key])] = torch.tensor(self.attention[key])
        attn_weights = None if self.attention is None else weights[:, None, None, :]  # [batch, 1, 1, src_len]
        return probs.log(), attn_weights, {"prefix": prefix}


@torch.inference_mode()
def rescore(model, src: Tensor, src_len: Tensor, tokens: list[int]) -> tuple[float, Tensor | None]:
    """Log-prob of `tokens` + <eos> for one sentence (src [1, src_len]) by teacher forcing, and its
    attention [heads, len(tokens) + 1, src_len] (None without attention)."""
    enc = model.encode(src, src_len)
    cache, state = model.start_decoding(enc)
    log_prob, rows = 0.0, []
    for previous, current in zip([BOS, *tokens], [*tokens, EOS], strict=True):
        log_probs, attn_weights, state = model.decode_step(torch.tensor([[previous]]), cache, state)
        log_prob += log_probs[0, current].item()
        if attn_weights is not None:
            rows.append(attn_weights[0, :, 0])
    return log_prob, torch.stack(rows, dim=1) if rows else None


def random_batch(
    seed: int, batch: int = 6, vocab_size: int = 12, max_src_len: int = 7
) -> tuple[Tensor, Tensor]:
    """A padded batch of random sources with lengths 1..max_src_len (the longest always present)."""
    generator = torch.Generator().manual_seed(seed)
    src_len = torch.randint(1, max_src_len + 1, (batch,), generator=generator)
    src_len[0] = max_src_len
    src = torch.randint(4, vocab_size, (batch, max_src_len), generator=generator)
    return src.masked_fill(~length_mask(src_len, max_src_len), PAD), src_len
