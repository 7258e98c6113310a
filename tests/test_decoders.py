"""Decoders: one position at a time equals all at once, the beam-search state contract, invalid options."""

import functools

import pytest
import torch

from src.errors import ConfigError
from src.models.attention import (
    BahdanauAttention,
    CoverageAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
    MultiHeadAttention,
    NoAttention,
    ScaledDotAttention,
)
from src.models.decoders import Decoder, RecurrentDecoder, TransformerDecoder
from src.models.encoders import ConvEncoder, EncoderOutput, RecurrentEncoder

BATCH, SRC_LEN, TGT_LEN, EMB, MEMORY, FINAL, HIDDEN = 4, 5, 6, 16, 32, 24, 32
LENGTHS = torch.tensor([5, 3, 1, 4])

ATTENTIONS = {
    "bahdanau": functools.partial(BahdanauAttention, hidden_size=16),
    "luong_dot": LuongDotAttention,
    "luong_general": LuongGeneralAttention,
    "luong_concat": functools.partial(LuongConcatAttention, hidden_size=16),
    "scaled_dot": ScaledDotAttention,
    "multihead": functools.partial(MultiHeadAttention, num_heads=2, hidden_size=16),
    "coverage": functools.partial(CoverageAttention, hidden_size=16),
    "none": NoAttention,
}
PARALLEL = [name for name in ATTENTIONS if name not in ("coverage", "none")]


def recurrent(attention: str, rnn_type: str = "lstm", input_feeding: bool = True) -> RecurrentDecoder:
    torch.manual_seed(0)
    return RecurrentDecoder(
        EMB,
        MEMORY,
        FINAL,
        ATTENTIONS[attention],
        rnn_type=rnn_type,
        hidden_size=HIDDEN,
        num_layers=2,
        input_feeding=input_feeding,
    ).eval()


def transformer(attention: str, memory_size: int = MEMORY) -> TransformerDecoder:
    torch.manual_seed(0)
    return TransformerDecoder(
        EMB, memory_size, FINAL, ATTENTIONS[attention], d_model=HIDDEN, num_layers=2, num_heads=2, d_ff=64
    ).eval()


def encoder_output(memory_size: int = MEMORY) -> EncoderOutput:
    generator = torch.Generator().manual_seed(1)
    return EncoderOutput(
        memory=torch.randn(BATCH, SRC_LEN, memory_size, generator=generator),
        mask=torch.arange(SRC_LEN).unsqueeze(0) < LENGTHS.unsqueeze(1),
        final=torch.randn(BATCH, FINAL, generator=generator),
    )


def target() -> torch.Tensor:
    return torch.randn(BATCH, TGT_LEN, EMB, generator=torch.Generator().manual_seed(2))


def assert_stepwise_equals_all_at_once(decoder: Decoder, enc: EncoderOutput) -> None:
    tgt_emb = target()
    cache, state = decoder.start(enc)
    output, weights, _ = decoder(tgt_emb, cache, state)
    outputs, step_weights = [], []
    for t in range(TGT_LEN):
        output_t, weights_t, state = decoder(tgt_emb[:, t : t + 1], cache, state)
        outputs.append(output_t)
        step_weights.append(weights_t)
    torch.testing.assert_close(torch.cat(outputs, dim=1), output)
    if weights is None:
        assert all(w is None for w in step_weights)
    else:
        torch.testing.assert_close(torch.cat(step_weights, dim=2), weights)


@pytest.mark.parametrize("input_feeding", [True, False], ids=["input_feeding", "no_input_feeding"])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_recurrent_stepwise_equals_all_at_once(attention: str, rnn_type: str, input_feeding: bool) -> None:
    assert_stepwise_equals_all_at_once(recurrent(attention, rnn_type, input_feeding), encoder_output())


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_input_feeding_loop_computes_what_the_rnn_module_computes(rnn_type: str) -> None:
    """The decoder's own cell math (input projection hoisted out of the time loop) equals stepping its
    nn.LSTM / nn.GRU on [e_t; o_{t-1}] one position at a time."""
    decoder = recurrent("bahdanau", rnn_type)
    tgt_emb = target()
    cache, state = decoder.start(encoder_output())
    output, _, _ = decoder(tgt_emb, cache, state)
    hidden = state["hidden"].transpose(0, 1).contiguous()  # [layers, batch, hidden]
    rnn_state = (hidden, state["cell"].transpose(0, 1).contiguous()) if rnn_type == "lstm" else hidden
    input_feed, expected = state["input_feed"], []
    for t in range(TGT_LEN):
        rnn_input = torch.cat([tgt_emb[:, t : t + 1], input_feed.unsqueeze(1)], dim=-1)
        rnn_output, rnn_state = decoder.rnn(rnn_input, rnn_state)
        output_t, _, _ = decoder._attend(rnn_output, cache, {})
        input_feed = output_t.squeeze(1)
        expected.append(output_t)
    torch.testing.assert_close(output, torch.cat(expected, dim=1))


@pytest.mark.parametrize("input_feeding", [True, False], ids=["input_feeding", "no_input_feeding"])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ["bahdanau", "coverage", "none"])
def test_steps_from_the_input_table_equal_steps_from_embeddings(attention, rnn_type, input_feeding) -> None:
    """A search step that looks its tokens up in `input_table` gives the outputs, weights and states of
    `forward` on their embeddings, step after step (2 layers, with the attention's own state)."""
    decoder = recurrent(attention, rnn_type, input_feeding)
    embedding = torch.randn(11, EMB, generator=torch.Generator().manual_seed(3))
    tokens = torch.randint(0, 11, (BATCH, TGT_LEN), generator=torch.Generator().manual_seed(4))
    cache, state = decoder.start(encoder_output())
    table_state = state
    with torch.inference_mode():
        table = decoder.input_table(embedding)
        for t in range(TGT_LEN):
            expected = decoder(embedding[tokens[:, t : t + 1]], cache, state)
            got = decoder.step_from_table(table[tokens[:, t]], cache, table_state)
            torch.testing.assert_close(got[:2], expected[:2])
            torch.testing.assert_close(got[2], expected[2])
            state, table_state = expected[2], got[2]


def test_the_input_table_is_kept_and_made_again_when_the_weights_change() -> None:
    decoder = recurrent("bahdanau")
    embedding = torch.randn(11, EMB)
    with torch.inference_mode():
        table = decoder.input_table(embedding)
        assert decoder.input_table(embedding) is table  # kept between steps and batches
    with torch.no_grad():
        decoder.rnn.weight_ih_l0.add_(0.5)  # what an optimizer step does: in place
    changed = decoder.input_table(embedding)
    w_ih = decoder.rnn.weight_ih_l0
    bias = decoder.rnn.bias_ih_l0 + decoder.rnn.bias_hh_l0
    torch.testing.assert_close(changed, embedding @ w_ih[:, :EMB].t() + bias)
    assert not torch.allclose(changed, table)
    assert not changed.is_inference()  # a module that decoded can still be copied (quantize_int8 does)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # bf16-mixed validation
        decoder.rnn.weight_ih_l0.add_(0.5)
        assert decoder.input_table(embedding).dtype == torch.float32  # usable outside autocast too


@pytest.mark.parametrize("memory_size", [MEMORY, 24], ids=["same_size", "projected_memory"])
@pytest.mark.parametrize("attention", PARALLEL)
def test_transformer_incremental_equals_all_at_once(attention: str, memory_size: int) -> None:
    assert_stepwise_equals_all_at_once(transformer(attention, memory_size), encoder_output(memory_size))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_recurrent_output_and_weights_have_documented_shapes(attention: str) -> None:
    decoder = recurrent(attention)
    output, weights, _ = decoder(target(), *decoder.start(encoder_output()))
    assert output.shape == (BATCH, TGT_LEN, decoder.output_size)
    if attention == "none":
        assert weights is None
    else:
        assert weights.shape == (BATCH, decoder.num_heads, TGT_LEN, SRC_LEN)


@pytest.mark.parametrize("attention", PARALLEL)
def test_transformer_weights_have_documented_shape(attention: str) -> None:
    decoder = transformer(attention)
    output, weights, _ = decoder(target(), *decoder.start(encoder_output()))
    assert output.shape == (BATCH, TGT_LEN, HIDDEN)
    assert weights.shape == (BATCH, decoder.num_heads, TGT_LEN, SRC_LEN)


DECODERS = {
    "lstm-coverage": lambda: recurrent("coverage", "lstm"),
    "gru-bahdanau-no_input_feeding": lambda: recurrent("bahdanau", "gru", input_feeding=False),
    "transformer-multihead": lambda: transformer("multihead"),
}


@pytest.mark.parametrize("name", DECODERS)
def test_cache_and_state_are_batch_first(name: str) -> None:
    decoder = DECODERS[name]()
    cache, state = decoder.start(encoder_output())
    _, _, state = decoder(target()[:, :2], cache, state)
    assert all(value.size(0) == BATCH for value in [*cache.values(), *state.values()])


@pytest.mark.parametrize("name", DECODERS)
def test_reordering_the_state_reorders_the_hypotheses(name: str) -> None:
    """The beam-search contract: expand the cache per source, reorder only the state."""
    decoder = DECODERS[name]()
    beams = 2
    cache, state = decoder.start(encoder_output())
    cache = {key: value.repeat_interleave(beams, dim=0) for key, value in cache.items()}
    state = {key: value.repeat_interleave(beams, dim=0) for key, value in state.items()}
    tgt_emb = torch.randn(BATCH * beams, 2, EMB, generator=torch.Generator().manual_seed(3))
    _, _, state = decoder(tgt_emb[:, :1], cache, state)
    output, weights, _ = decoder(tgt_emb[:, 1:], cache, state)
    # hypotheses stay within their own sentence's beam: 0,1 -> sentence 0; 2,3 -> sentence 1 ...
    order = torch.tensor([1, 1, 2, 3, 5, 4, 7, 6])
    reordered = {key: value.index_select(0, order) for key, value in state.items()}
    output_reordered, weights_reordered, _ = decoder(tgt_emb[order, 1:], cache, reordered)
    torch.testing.assert_close(output_reordered, output[order])
    torch.testing.assert_close(weights_reordered, weights[order])


def test_every_layer_starts_from_the_bridged_encoder_final() -> None:
    decoder = recurrent("bahdanau")
    enc = encoder_output()
    _, state = decoder.start(enc)
    bridged = torch.tanh(decoder.bridge(enc.final))
    for layer in range(2):
        torch.testing.assert_close(state["hidden"][:, layer], bridged)
    assert (state["cell"] == 0).all()
    assert (state["input_feed"] == 0).all()


def test_recurrent_decoder_without_attention_still_reads_the_source() -> None:
    decoder = recurrent("none")
    enc = encoder_output()
    other = EncoderOutput(enc.memory, enc.mask, enc.final.flip(0))
    output, _, _ = decoder(target(), *decoder.start(enc))
    output_other, _, _ = decoder(target(), *decoder.start(other))
    assert not torch.allclose(output, output_other)


@pytest.mark.parametrize("attention", ["coverage", "none"])
def test_transformer_decoder_rejects_attention_it_cannot_use(attention: str) -> None:
    with pytest.raises(
        ConfigError, match=f"decoder=transformer cannot use attention={attention}.*decoder=lstm"
    ):
        transformer(attention)


def test_transformer_decoder_rejects_heads_that_do_not_divide_d_model() -> None:
    with pytest.raises(ConfigError, match="decoder.num_heads=3"):
        TransformerDecoder(EMB, MEMORY, FINAL, ScaledDotAttention, d_model=HIDDEN, num_heads=3)


def test_unknown_decoder_rnn_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match="decoder.rnn_type"):
        RecurrentDecoder(EMB, MEMORY, FINAL, BahdanauAttention, rnn_type="rnn")  # type: ignore[arg-type]


def test_target_longer_than_max_positions_is_rejected() -> None:
    decoder = TransformerDecoder(EMB, MEMORY, FINAL, ScaledDotAttention, d_model=HIDDEN, max_positions=4)
    with pytest.raises(ConfigError, match="decoder.max_positions=4"):
        decoder(target(), *decoder.start(encoder_output()))


# ---------------------------------------------------------------- OpenNMT-py's variants of the RNN decoder


def onmt_style(rnn_type: str = "lstm", **options) -> tuple[RecurrentDecoder, EncoderOutput]:
    """A decoder with bridge=copy and the encoder output of a real 2-layer bidirectional encoder."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder(EMB, rnn_type=rnn_type, hidden_size=HIDDEN, num_layers=2).eval()
    decoder = RecurrentDecoder(
        EMB, HIDDEN, HIDDEN, ATTENTIONS["bahdanau"], rnn_type=rnn_type, hidden_size=HIDDEN, num_layers=2,
        bridge="copy", **options,
    ).eval()  # fmt: skip
    decoder.check_encoder(encoder)
    src = torch.randn(BATCH, SRC_LEN, EMB, generator=torch.Generator().manual_seed(3))
    mask = torch.arange(SRC_LEN).unsqueeze(0) < LENGTHS.unsqueeze(1)
    return decoder, encoder(src, LENGTHS, mask)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_bridge_copy_starts_every_layer_from_the_encoders_final_states(rnn_type: str) -> None:
    torch.manual_seed(0)
    encoder = RecurrentEncoder(EMB, rnn_type=rnn_type, hidden_size=HIDDEN, num_layers=2).eval()
    src = torch.randn(BATCH, SRC_LEN, EMB, generator=torch.Generator().manual_seed(3))
    mask = torch.arange(SRC_LEN).unsqueeze(0) < LENGTHS.unsqueeze(1)
    enc = encoder(src, LENGTHS, mask)
    # sentence 1 alone, unpadded, through the encoder's own nn.LSTM/GRU: h_n [layers * directions, 1, size]
    _, h_n = encoder.rnn(src[1:2, : LENGTHS[1]])
    h_n, c_n = h_n if rnn_type == "lstm" else (h_n, None)
    decoder, _ = onmt_style(rnn_type)
    _, state = decoder.start(enc)
    for layer in range(2):
        expected = torch.cat([h_n[2 * layer, 0], h_n[2 * layer + 1, 0]])  # forward, then backward
        torch.testing.assert_close(state["hidden"][1, layer], expected)
        if c_n is not None:
            torch.testing.assert_close(
                state["cell"][1, layer], torch.cat([c_n[2 * layer, 0], c_n[2 * layer + 1, 0]])
            )
    torch.testing.assert_close(enc.final, enc.final_hidden[:, -1])  # what bridge=tanh reads: the last layer
    assert decoder.bridge is None  # no bridge weights to learn


@pytest.mark.parametrize("options", [{}, {"output_activation": "none", "dropout_at": "output"}])
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_onmt_style_decoder_stepwise_equals_all_at_once(rnn_type: str, options: dict) -> None:
    decoder, enc = onmt_style(rnn_type, **options)
    assert_stepwise_equals_all_at_once(decoder, enc)


def test_output_activation_none_leaves_the_attentional_vector_linear() -> None:
    tanh, enc = onmt_style()
    linear, _ = onmt_style(output_activation="none")
    cache, state = tanh.start(enc)
    output_tanh, _, _ = tanh(target(), cache, state)
    assert output_tanh.abs().max() < 1
    rnn_output = torch.randn(BATCH, 1, HIDDEN)
    output, _, _ = linear._attend(rnn_output, cache, {})
    context, _, _ = linear.attention(rnn_output, cache["keys"], cache["values"], cache["mask"], {})
    torch.testing.assert_close(output, linear.output_layer(torch.cat([rnn_output, context], dim=-1)))


def test_dropout_at_output_drops_the_vector_that_is_fed_back() -> None:
    """dropout_at=output: zeros in o_t itself (and the next step reads it); dropout_at=input: o_t = tanh(...)
    of a dropped-out input has no exact zeros."""
    for place, zeros_expected in (("output", True), ("input", False)):
        decoder, enc = onmt_style(dropout_at=place)
        decoder.dropout.p = 0.5
        decoder.train()
        cache, state = decoder.start(enc)
        output, _, new_state = decoder(target(), cache, state)
        assert bool((output == 0).any()) is zeros_expected, place
        torch.testing.assert_close(new_state["input_feed"], output[:, -1])


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        ({"rnn_type": "gru"}, "the encoder is gru, 2 layer"),
        ({"num_layers": 1}, "the encoder is lstm, 1 layer"),
        ({"hidden_size": 16}, "layer\\(s\\) of 16"),
    ],
)
def test_bridge_copy_refuses_an_encoder_it_cannot_copy(encoder: dict, message: str) -> None:
    decoder = RecurrentDecoder(EMB, HIDDEN, HIDDEN, ATTENTIONS["bahdanau"], hidden_size=HIDDEN, num_layers=2,
                               bridge="copy")  # fmt: skip
    options = {"rnn_type": "lstm", "hidden_size": HIDDEN, "num_layers": 2, **encoder}
    with pytest.raises(ConfigError, match=f"decoder.bridge=copy .*{message}"):
        decoder.check_encoder(RecurrentEncoder(EMB, **options))
    with pytest.raises(ConfigError, match="the encoder is a ConvEncoder"):
        decoder.check_encoder(ConvEncoder(EMB, hidden_size=HIDDEN))


@pytest.mark.parametrize("option", ["bridge", "output_activation", "dropout_at"])
def test_unknown_choices_of_the_recurrent_decoder_are_refused(option: str) -> None:
    with pytest.raises(ConfigError, match=f"decoder.{option}='other' is invalid"):
        RecurrentDecoder(EMB, MEMORY, FINAL, ATTENTIONS["bahdanau"], **{option: "other"})
