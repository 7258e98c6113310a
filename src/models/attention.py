"""Attention mechanisms: one class per score function, all behind one interface.

A decoder calls `prepare(memory)` once per batch (key projections live there, never in the time loop),
`init_state(mask)` once per batch, and then `forward(query, keys, values, mask, state)` for one or more
target positions:

    query   [batch, q_len, query_size]        the decoder states asking "where to look"
    keys    [batch, src_len, ...]             from prepare: what the scores compare the query with
    values  [batch, src_len, key_size]        from prepare: what the context averages
    mask    [batch, src_len] bool             True = real source token
    context [batch, q_len, output_size]       the weighted average of the values
    weights [batch, heads, q_len, src_len]    a distribution over source positions (heads = 1 unless
                                              multi-head); padded positions get exactly 0

Notation in the formulas: q = query, k = key (an encoder state), a = the weights, c = the context.

Heads can be gated (`HeadGate`, Michel, Levy & Neubig 2019): `MultiHeadAttention` here, and the
self-attention of the Transformer encoder and decoder through `gated_self_attention`, which also returns
their per-head weights.
"""

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.checks import require_divides, require_fraction, require_sizes
from src.errors import ConfigError
from src.models.activations import tanh_


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over source positions that gives padded positions exactly zero weight.

    scores `[batch, heads, q_len, src_len]`, mask `[batch, src_len]` (True = real) -> weights of the
    same shape as scores. Masked scores become the dtype's own minimum, so exp() underflows to 0 in any
    precision (a literal like -1e20 would overflow in float16).
    """
    scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1)


class HeadGate(nn.Module):
    """A multiplier on the output of each head of one multi-head attention (Michel, Levy & Neubig 2019,
    "Are Sixteen Heads Really Better than One?", section 2):

        MultiHead(q, k, v) = W^O [g_1 head_1; ...; g_h head_h]

    With no gate set (`values` is None, the default) nothing is computed and the attention's output is
    exactly what it was. `set` installs gates: `[heads]` for every sentence (0 prunes a head, 1 keeps it),
    or `[batch, heads]`, one gate per sentence, so that one backward pass gives every sentence's
    d loss / d g (head importance, `src.heads`). The values are a buffer that is not saved in the weights:
    a pruned model keeps its mask in its config (`Seq2Seq(head_mask=...)`).

    `kind` names the attention the heads belong to: "encoder" or "decoder" (self-attention) or "cross".
    """

    def __init__(self, num_heads: int, kind: str) -> None:
        super().__init__()
        self.num_heads, self.kind = num_heads, kind
        self.register_buffer("values", None, persistent=False)

    @property
    def active(self) -> bool:
        """Whether gates are set (so the attention must compute its heads one by one)."""
        return self.values is not None

    def set(self, values: Tensor | None) -> None:
        """Gates `[heads]` or `[batch, heads]` (they may require grad), or None: no gate."""
        if values is not None and (values.dim() not in (1, 2) or values.size(-1) != self.num_heads):
            raise ValueError(
                f"gates of shape {tuple(values.shape)} do not fit {self.num_heads} heads: "
                f"expected [{self.num_heads}] or [batch, {self.num_heads}]"
            )
        self.values = values

    def forward(self, heads: Tensor) -> Tensor:
        """heads `[batch, heads, len, head_size]` -> each head times its gate (unchanged without gates)."""
        if self.values is None:
            return heads
        gates = self.values.to(heads.dtype)
        return heads * gates.view(-1 if gates.dim() == 2 else 1, self.num_heads, 1, 1)


def gated_self_attention(
    attention: nn.MultiheadAttention,
    x: Tensor,
    keep: Tensor | None,
    future: Tensor | None,
    gate: HeadGate,
    context: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The self-attention of `nn.MultiheadAttention` (its own weights, packed in-projection, batch first)
    computed head by head, so that its heads can be gated and their weights read:

        head_i = softmax((W^Q_i x)(W^K_i x)^T / sqrt(d_h)) (W^V_i x),   out = W^O [g_1 head_1; ...]

    x `[batch, len, d_model]`; keep `[batch, keys]` bool (True = a real key) or None; future `[len, keys]`
    bool (True = a later position, hidden) or None; context `[batch, keys, d_model]`: the keys and values are
    computed from it (a decoder's cached prefix and x), None: from x -> (out `[batch, len, d_model]`, weights
    `[batch, heads, len, keys]`, before dropout). With no gate it equals the module's own forward (up to
    rounding: PyTorch's fused kernels sum in another order).
    """
    batch, length, _ = x.shape
    heads, head_size = attention.num_heads, attention.head_dim

    def split(part: Tensor) -> Tensor:  # [batch, n, d_model] -> [batch, heads, n, head_size]
        return part.view(batch, part.size(1), heads, head_size).transpose(1, 2)

    if context is None:
        projected = F.linear(x, attention.in_proj_weight, attention.in_proj_bias)  # [batch, len, 3 * d_model]
        queries, keys, values = (split(part) for part in projected.chunk(3, dim=-1))
    else:
        w_q, w_kv = attention.in_proj_weight.split([attention.embed_dim, 2 * attention.embed_dim])
        b_q, b_kv = attention.in_proj_bias.split([attention.embed_dim, 2 * attention.embed_dim])
        queries = split(F.linear(x, w_q, b_q))
        keys, values = (split(part) for part in F.linear(context, w_kv, b_kv).chunk(2, dim=-1))
    scores = queries @ keys.transpose(2, 3) / math.sqrt(head_size)  # [batch, heads, len, keys]
    hidden = torch.zeros(batch, 1, length, keys.size(2), dtype=torch.bool, device=x.device)
    if future is not None:
        hidden = hidden | future
    if keep is not None:
        hidden = hidden | ~keep[:, None, None, :]
    weights = torch.softmax(scores.masked_fill(hidden, torch.finfo(scores.dtype).min), dim=-1)
    heads_out = F.dropout(weights, attention.dropout, attention.training) @ values
    heads_out = gate(heads_out).transpose(1, 2).reshape(batch, length, -1)  # [batch, len, d_model]
    return attention.out_proj(heads_out), weights


class Attention(nn.Module):
    """Base class. A single-head attention only defines `score`; `forward` turns scores into weights
    with `masked_softmax` and averages the values.

    Attributes:
        name: the config option (conf/attention/<name>.yaml) that builds the class.
        parallel: True if all target positions can attend at once (False when a step needs the
            attention of the previous steps).
        output_size: size of the context vector.
        num_heads: number of attention distributions per query.
    """

    name: ClassVar[str]
    parallel: ClassVar[bool] = True
    num_heads: int = 1

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.query_size = query_size
        self.key_size = key_size
        self.output_size = key_size

    def prepare(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """memory `[batch, src_len, key_size]` -> (keys, values), computed once per batch."""
        return memory, memory

    def init_state(self, mask: Tensor) -> dict[str, Tensor]:
        """The state carried from one target step to the next (batch-first tensors)."""
        return {}

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """query `[batch, q_len, query_size]`, keys -> unnormalised scores `[batch, q_len, src_len]`."""
        raise NotImplementedError

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        weights = masked_softmax(self.score(query, keys).unsqueeze(1), mask)  # [batch, 1, q_len, src_len]
        context = weights.squeeze(1) @ values  # [batch, q_len, key_size]
        return context, weights, state


class BahdanauAttention(Attention):
    """Additive attention (Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning
    to Align and Translate", appendix A.1.2):

        score(q, k_j) = v^T tanh(W q + U k_j),   a = softmax(score),   c = sum_j a_j k_j

    U k_j does not depend on the query, so `prepare` computes it once per batch.
    """

    name = "bahdanau"

    def __init__(self, query_size: int, key_size: int, hidden_size: int = 256) -> None:
        super().__init__(query_size, key_size)
        require_sizes("attention", hidden_size=hidden_size)
        self.query_layer = nn.Linear(query_size, hidden_size, bias=False)  # W
        self.key_layer = nn.Linear(key_size, hidden_size, bias=False)  # U
        self.energy_layer = nn.Linear(hidden_size, 1, bias=False)  # v

    def prepare(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        return self.key_layer(memory), memory  # keys [batch, src_len, hidden]

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        query = self.query_layer(query).unsqueeze(2)  # [batch, q_len, 1, hidden]
        energy = tanh_(query + keys.unsqueeze(1))  # [batch, q_len, src_len, hidden]
        return self.energy_layer(energy).squeeze(-1)  # [batch, q_len, src_len]


class LuongConcatAttention(BahdanauAttention):
    """Concat attention (Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural
    Machine Translation", section 3.1):

        score(q, k_j) = v^T tanh(W [q; k_j]) = v^T tanh(W_q q + W_k k_j)

    Splitting W into its query and key halves gives Bahdanau's additive score, so the key half is
    precomputed in `prepare` and the code is shared. (The papers differ in *which* decoder state is the
    query; here it is always the current one.)
    """

    name = "luong_concat"


class LuongDotAttention(Attention):
    """Dot attention (Luong, Pham & Manning 2015, section 3.1):

        score(q, k_j) = q^T k_j

    Needs query_size == key_size; `luong_general` learns a matrix between them instead.
    """

    name = "luong_dot"

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__(query_size, key_size)
        if query_size != key_size:
            raise ConfigError(
                f"attention=luong_dot needs the decoder state size ({query_size}) to equal the encoder "
                f"output size ({key_size}); make the sizes equal or use attention=luong_general, which "
                "learns a matrix between them."
            )

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)  # [batch, q_len, src_len]


class LuongGeneralAttention(Attention):
    """General (bilinear) attention (Luong, Pham & Manning 2015, section 3.1):

        score(q, k_j) = q^T W k_j

    W k_j does not depend on the query, so `prepare` computes it once per batch.
    """

    name = "luong_general"

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__(query_size, key_size)
        self.key_layer = nn.Linear(key_size, query_size, bias=False)  # W

    def prepare(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        return self.key_layer(memory), memory  # keys [batch, src_len, query_size]

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)  # [batch, q_len, src_len]


class ScaledDotAttention(Attention):
    """Scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need", section 3.2.1):

        score(q, k_j) = (W q)^T k_j / sqrt(d),   d = key_size

    W is a learned projection used only when query_size != key_size (identity otherwise). Dividing by
    sqrt(d) keeps the scores' variance near 1, so the softmax does not saturate for large d.
    """

    name = "scaled_dot"

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__(query_size, key_size)
        self.query_layer = (
            nn.Identity() if query_size == key_size else nn.Linear(query_size, key_size, bias=False)
        )

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        query = self.query_layer(query)  # [batch, q_len, key_size]
        return query @ keys.transpose(1, 2) / math.sqrt(self.key_size)


class MultiHeadAttention(Attention):
    """Multi-head attention (Vaswani et al. 2017, "Attention Is All You Need", section 3.2.2):

        head_i = softmax((W^Q_i q)^T (W^K_i k) / sqrt(d_h)) (W^V_i k),   d_h = hidden_size / num_heads
        c = W^O [head_1; ...; head_h]

    Keys and values are projected once per batch in `prepare`; W^O maps back to key_size, so the context
    has the size of the memory like every other attention. Weights: `[batch, num_heads, q_len, src_len]`
    (before dropout). `head_gate` multiplies each head before W^O (`HeadGate`; no gate by default).
    """

    name = "multihead"

    def __init__(
        self, query_size: int, key_size: int, num_heads: int = 4, hidden_size: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__(query_size, key_size)
        require_sizes("attention", num_heads=num_heads, hidden_size=hidden_size)
        require_divides("attention", "num_heads", num_heads, "hidden_size", hidden_size)
        require_fraction("attention.dropout", dropout)
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.query_layer = nn.Linear(query_size, hidden_size)  # W^Q
        self.key_layer = nn.Linear(key_size, hidden_size)  # W^K
        self.value_layer = nn.Linear(key_size, hidden_size)  # W^V
        self.output_layer = nn.Linear(hidden_size, key_size)  # W^O
        self.dropout = nn.Dropout(dropout)
        self.head_gate = HeadGate(num_heads, kind="cross")

    def _split_heads(self, x: Tensor) -> Tensor:
        """`[batch, len, hidden]` -> `[batch, heads, len, head_size]`."""
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_size).transpose(1, 2)

    def prepare(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        keys = self._split_heads(self.key_layer(memory))  # [batch, heads, src_len, head_size]
        values = self._split_heads(self.value_layer(memory))  # [batch, heads, src_len, head_size]
        return keys, values

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        queries = self._split_heads(self.query_layer(query))  # [batch, heads, q_len, head_size]
        scores = queries @ keys.transpose(2, 3) / math.sqrt(self.head_size)  # [batch, heads, q_len, src_len]
        weights = masked_softmax(scores, mask)
        heads = self.head_gate(self.dropout(weights) @ values)  # [batch, heads, q_len, head_size]
        heads = heads.transpose(1, 2).reshape(query.size(0), query.size(1), -1)  # [batch, q_len, hidden]
        return self.output_layer(heads), weights, state


class CoverageAttention(BahdanauAttention):
    """Additive attention with a coverage vector (Tu et al. 2016, "Modeling Coverage for Neural Machine
    Translation"; in the form of See, Liu & Manning 2017, "Get To The Point", section 2.3):

        cov_t = sum_{t' < t} a_t'                          how much each source word was attended so far
        score(q_t, k_j) = v^T tanh(W q_t + U k_j + w_c cov_t,j)

    The coverage is carried in the state as {"coverage": [batch, src_len]}; step t needs the weights of
    all earlier steps, so the attention is sequential (`parallel = False`) and a query with q_len > 1 is
    processed one position after another.
    """

    name = "coverage"
    parallel = False

    def __init__(self, query_size: int, key_size: int, hidden_size: int = 256) -> None:
        super().__init__(query_size, key_size, hidden_size)
        self.coverage_layer = nn.Linear(1, hidden_size, bias=False)  # w_c

    def init_state(self, mask: Tensor) -> dict[str, Tensor]:
        return {"coverage": torch.zeros(mask.shape, device=mask.device)}  # [batch, src_len]

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        coverage = state["coverage"]  # [batch, src_len]
        contexts, weights = [], []
        for t in range(query.size(1)):
            # U k_j + w_c cov_j: the coverage term joins the precomputed key term
            keys_t = keys + self.coverage_layer(coverage.unsqueeze(-1).to(keys.dtype))
            context, weights_t, _ = super().forward(query[:, t : t + 1], keys_t, values, mask, {})
            coverage = coverage + weights_t[:, 0, 0]
            contexts.append(context)
            weights.append(weights_t)
        # context [batch, q_len, key_size], weights [batch, 1, q_len, src_len]
        return torch.cat(contexts, dim=1), torch.cat(weights, dim=2), {"coverage": coverage}


class NoAttention(Attention):
    """No attention: the baseline encoder-decoder of Sutskever, Vinyals & Le (2014, "Sequence to Sequence
    Learning with Neural Networks") and Cho et al. (2014):

        c = [] (an empty, zero-sized context)

    The decoder sees the source only through its initial state, bridged from the encoder's final state.
    Weights are None; `output_size` is 0, so a decoder that concatenates [h; c] needs no special case.
    """

    name = "none"
    num_heads = 0

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__(query_size, key_size)
        self.output_size = 0

    def prepare(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        empty = memory[..., :0]  # [batch, src_len, 0]
        return empty, empty

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        context = query.new_zeros(query.size(0), query.size(1), 0)  # [batch, q_len, 0]
        return context, None, state
