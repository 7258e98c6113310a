"""Encoders: shapes, padding invariance, the recurrent final state, invalid options."""

import functools

import pytest
import torch

from src.errors import ConfigError
from src.models.encoders import ConvEncoder, Encoder, RecurrentEncoder, TransformerEncoder

BATCH, EMB, HIDDEN = 4, 16, 32
LENGTHS = torch.tensor([6, 3, 1, 5])

ENCODERS = {
    "lstm": functools.partial(RecurrentEncoder, rnn_type="lstm", num_layers=2),
    "gru": functools.partial(RecurrentEncoder, rnn_type="gru", num_layers=2),
    "lstm_unidirectional": functools.partial(RecurrentEncoder, rnn_type="lstm", bidirectional=False),
    "conv": functools.partial(ConvEncoder, num_layers=3, kernel_size=5),
    "transformer_sinusoidal": functools.partial(TransformerEncoder, num_layers=2, num_heads=2, d_ff=64),
    "transformer_learned": functools.partial(
        TransformerEncoder, num_layers=2, num_heads=2, d_ff=64, positions="learned"
    ),
}
SIZE_OPTION = {"conv": "hidden_size", "transformer_sinusoidal": "d_model", "transformer_learned": "d_model"}


def build(name: str) -> Encoder:
    torch.manual_seed(0)
    size = {SIZE_OPTION.get(name, "hidden_size"): HIDDEN}
    return ENCODERS[name](input_size=EMB, **size).eval()


def source(src_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(src_emb [batch, src_len, emb], mask [batch, src_len]): the same real tokens for every src_len,
    large garbage at the padded positions so that any leak shows."""
    max_len = int(LENGTHS.max())
    tokens = torch.randn(BATCH, max_len, EMB, generator=torch.Generator().manual_seed(1))
    tokens = torch.cat([tokens, torch.zeros(BATCH, src_len - max_len, EMB)], dim=1)
    garbage = torch.randn(BATCH, src_len, EMB, generator=torch.Generator().manual_seed(src_len)) * 10
    mask = torch.arange(src_len).unsqueeze(0) < LENGTHS.unsqueeze(1)
    return torch.where(mask.unsqueeze(-1), tokens, garbage), mask


@pytest.mark.parametrize("name", ENCODERS)
def test_output_has_documented_shapes(name: str) -> None:
    encoder = build(name)
    src_emb, mask = source(6)
    out = encoder(src_emb, LENGTHS, mask)
    assert encoder.output_size == HIDDEN
    assert out.memory.shape == (BATCH, 6, HIDDEN)
    assert out.final.shape == (BATCH, HIDDEN)
    assert torch.equal(out.mask, mask)


@pytest.mark.parametrize("name", ENCODERS)
def test_extra_padding_does_not_change_memory_or_final(name: str) -> None:
    encoder = build(name)
    short_emb, short_mask = source(6)
    long_emb, long_mask = source(9)
    short = encoder(short_emb, LENGTHS, short_mask)
    long = encoder(long_emb, LENGTHS, long_mask)
    torch.testing.assert_close(long.final, short.final)
    real = short_mask.unsqueeze(-1)
    torch.testing.assert_close(long.memory[:, :6] * real, short.memory * real)


def test_recurrent_final_is_last_forward_and_first_backward_state() -> None:
    encoder = build("gru")
    src_emb, mask = source(6)
    out = encoder(src_emb, LENGTHS, mask)
    half = HIDDEN // 2
    last = out.memory[torch.arange(BATCH), LENGTHS - 1, :half]  # forward direction at the last token
    first = out.memory[:, 0, half:]  # backward direction at the first token
    torch.testing.assert_close(out.final, torch.cat([last, first], dim=-1))


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_recurrent_memory_is_zero_at_padded_positions(rnn_type: str) -> None:
    encoder = build(rnn_type)
    src_emb, mask = source(6)
    memory = encoder(src_emb, LENGTHS, mask).memory
    assert (memory[~mask] == 0).all()


def test_bidirectional_encoder_rejects_odd_hidden_size() -> None:
    with pytest.raises(ConfigError, match="encoder.hidden_size=33"):
        RecurrentEncoder(input_size=EMB, hidden_size=33)


def test_unknown_rnn_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match="encoder.rnn_type"):
        RecurrentEncoder(input_size=EMB, rnn_type="rnn")  # type: ignore[arg-type]


def test_conv_encoder_rejects_even_kernel_size() -> None:
    with pytest.raises(ConfigError, match="encoder.kernel_size=4"):
        ConvEncoder(input_size=EMB, kernel_size=4)


def test_transformer_encoder_rejects_heads_that_do_not_divide_d_model() -> None:
    with pytest.raises(ConfigError, match="encoder.num_heads=3"):
        TransformerEncoder(input_size=EMB, d_model=HIDDEN, num_heads=3)


def test_unknown_positions_option_is_rejected() -> None:
    with pytest.raises(ConfigError, match="encoder.positions"):
        TransformerEncoder(input_size=EMB, d_model=HIDDEN, num_heads=2, positions="rotary")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["conv", "transformer_sinusoidal", "transformer_learned"])
def test_source_longer_than_max_positions_is_rejected(name: str) -> None:
    size = {SIZE_OPTION[name]: HIDDEN}
    encoder = ENCODERS[name](input_size=EMB, max_positions=5, **size)
    src_emb, mask = source(6)
    with pytest.raises(ConfigError, match="encoder.max_positions=5"):
        encoder(src_emb, LENGTHS, mask)
