"""Attention mechanisms: distributions, masking, padding invariance, coverage, invalid options."""

import functools

import pytest
import torch

from src.errors import ConfigError
from src.models.attention import (
    Attention,
    BahdanauAttention,
    CoverageAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
    MultiHeadAttention,
    NoAttention,
    ScaledDotAttention,
    masked_softmax,
)

BATCH, SRC_LEN, Q_LEN, SIZE = 4, 7, 3, 32
LENGTHS = torch.tensor([7, 5, 2, 6])

ATTENTIONS = {
    "bahdanau": functools.partial(BahdanauAttention, hidden_size=16),
    "luong_dot": LuongDotAttention,
    "luong_general": LuongGeneralAttention,
    "luong_concat": functools.partial(LuongConcatAttention, hidden_size=16),
    "scaled_dot": ScaledDotAttention,
    "multihead": functools.partial(MultiHeadAttention, num_heads=4, hidden_size=16),
    "coverage": functools.partial(CoverageAttention, hidden_size=16),
}


def build(name: str) -> Attention:
    torch.manual_seed(0)
    return ATTENTIONS[name](query_size=SIZE, key_size=SIZE).eval()


def mask_of(lengths: torch.Tensor, src_len: int) -> torch.Tensor:
    return torch.arange(src_len).unsqueeze(0) < lengths.unsqueeze(1)  # [batch, src_len]


def attend(attention: Attention, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
    keys, values = attention.prepare(memory)
    return attention(query, keys, values, mask, attention.init_state(mask))


def inputs(src_len: int = SRC_LEN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(BATCH, Q_LEN, SIZE, generator=generator)
    memory = torch.randn(BATCH, src_len, SIZE, generator=generator)
    return query, memory, mask_of(LENGTHS, src_len)


@pytest.mark.parametrize("name", ATTENTIONS)
def test_weights_sum_to_one_over_source_positions(name: str) -> None:
    query, memory, mask = inputs()
    _, weights, _ = attend(build(name), query, memory, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


@pytest.mark.parametrize("name", ATTENTIONS)
def test_weights_have_documented_shape(name: str) -> None:
    query, memory, mask = inputs()
    attention = build(name)
    context, weights, _ = attend(attention, query, memory, mask)
    assert weights.shape == (BATCH, attention.num_heads, Q_LEN, SRC_LEN)
    assert context.shape == (BATCH, Q_LEN, attention.output_size)


@pytest.mark.parametrize("name", ATTENTIONS)
def test_padded_positions_get_exactly_zero_weight(name: str) -> None:
    query, memory, mask = inputs()
    _, weights, _ = attend(build(name), query, memory, mask)
    assert (weights.masked_select(~mask[:, None, None, :]) == 0).all()


@pytest.mark.parametrize("name", ATTENTIONS)
def test_extra_padding_does_not_change_context_or_weights(name: str) -> None:
    query, memory, mask = inputs()
    attention = build(name)
    context, weights, _ = attend(attention, query, memory, mask)
    junk = torch.randn(BATCH, 3, SIZE) * 100  # padded memory holds garbage on purpose
    longer = torch.cat([memory, junk], dim=1)
    context_padded, weights_padded, _ = attend(attention, query, longer, mask_of(LENGTHS, SRC_LEN + 3))
    torch.testing.assert_close(context_padded, context)
    torch.testing.assert_close(weights_padded[..., :SRC_LEN], weights)
    assert (weights_padded[..., SRC_LEN:] == 0).all()


def test_coverage_state_is_the_sum_of_past_weights() -> None:
    query, memory, mask = inputs()
    attention = build("coverage")
    keys, values = attention.prepare(memory)
    state = attention.init_state(mask)
    total = torch.zeros(BATCH, SRC_LEN)
    for t in range(Q_LEN):
        _, weights, state = attention(query[:, t : t + 1], keys, values, mask, state)
        total = total + weights[:, 0, 0]
        torch.testing.assert_close(state["coverage"], total)


def test_coverage_changes_later_weights() -> None:
    query, memory, mask = inputs()
    attention = build("coverage")
    keys, values = attention.prepare(memory)
    repeated = query[:, :1].expand(BATCH, 2, SIZE)  # the same query twice
    _, weights, _ = attention(repeated, keys, values, mask, attention.init_state(mask))
    assert not torch.allclose(weights[:, :, 0], weights[:, :, 1])


def test_coverage_over_many_queries_equals_one_query_at_a_time() -> None:
    query, memory, mask = inputs()
    attention = build("coverage")
    keys, values = attention.prepare(memory)
    context, weights, state = attention(query, keys, values, mask, attention.init_state(mask))
    step_state = attention.init_state(mask)
    contexts, step_weights = [], []
    for t in range(Q_LEN):
        context_t, weights_t, step_state = attention(query[:, t : t + 1], keys, values, mask, step_state)
        contexts.append(context_t)
        step_weights.append(weights_t)
    torch.testing.assert_close(context, torch.cat(contexts, dim=1))
    torch.testing.assert_close(weights, torch.cat(step_weights, dim=2))
    torch.testing.assert_close(state["coverage"], step_state["coverage"])


def test_no_attention_gives_an_empty_context_and_no_weights() -> None:
    query, memory, mask = inputs()
    attention = NoAttention(query_size=SIZE, key_size=SIZE)
    context, weights, _ = attend(attention, query, memory, mask)
    assert attention.output_size == 0
    assert context.shape == (BATCH, Q_LEN, 0)
    assert weights is None


def test_luong_dot_rejects_different_query_and_key_sizes() -> None:
    with pytest.raises(ConfigError, match="luong_general"):
        LuongDotAttention(query_size=32, key_size=48)


@pytest.mark.parametrize("name", ["luong_general", "luong_concat", "bahdanau", "scaled_dot", "multihead"])
def test_attention_accepts_different_query_and_key_sizes(name: str) -> None:
    attention = ATTENTIONS[name](query_size=24, key_size=SIZE)
    _, memory, mask = inputs()
    context, _, _ = attend(attention, torch.randn(BATCH, Q_LEN, 24), memory, mask)
    assert context.shape == (BATCH, Q_LEN, SIZE)


def test_multihead_rejects_heads_that_do_not_divide_hidden_size() -> None:
    with pytest.raises(ConfigError, match="attention.num_heads=3"):
        MultiHeadAttention(query_size=SIZE, key_size=SIZE, num_heads=3, hidden_size=16)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masked_softmax_zeroes_padding_in_half_precision(dtype: torch.dtype) -> None:
    scores = torch.randn(2, 1, 1, 5).to(dtype)
    mask = torch.tensor([[True, True, False, False, False], [True, True, True, True, True]])
    weights = masked_softmax(scores, mask)
    assert (weights[0, ..., 2:] == 0).all()
    assert torch.isfinite(weights).all()
