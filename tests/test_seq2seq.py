"""Seq2Seq: shapes, decode_step, teacher forcing, tied embeddings, initialisation."""

import functools

import pytest
import torch
import torch.nn.functional as F

from src.errors import ConfigError
from src.models.attention import BahdanauAttention, MultiHeadAttention, NoAttention
from src.models.decoders import RecurrentDecoder, TransformerDecoder
from src.models.encoders import RecurrentEncoder, TransformerEncoder
from src.models.seq2seq import Seq2Seq

VOCAB, EMB, HIDDEN = 12, 16, 32


def rnn_model(**options) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        VOCAB,
        VOCAB,
        encoder=functools.partial(RecurrentEncoder, hidden_size=HIDDEN, dropout=0.0),
        attention=functools.partial(BahdanauAttention, hidden_size=16),
        decoder=functools.partial(RecurrentDecoder, hidden_size=HIDDEN, dropout=0.0),
        embedding_size=EMB,
        **options,
    )


def transformer_model(decoder_layers: int = 1, **options) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        VOCAB,
        VOCAB,
        encoder=functools.partial(TransformerEncoder, d_model=HIDDEN, num_layers=1, num_heads=2, d_ff=64),
        attention=functools.partial(MultiHeadAttention, num_heads=4, hidden_size=16),
        decoder=functools.partial(
            TransformerDecoder, d_model=HIDDEN, num_layers=decoder_layers, num_heads=2, d_ff=64
        ),
        embedding_size=EMB,
        **options,
    )


MODELS = {"rnn": rnn_model, "transformer": transformer_model}


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(src [4, 6], src_len [4], tgt_in [4, 5]) with padding."""
    src = torch.tensor([[4, 5, 6, 7, 8, 9], [10, 11, 4, 0, 0, 0], [6, 6, 0, 0, 0, 0], [11, 7, 8, 10, 4, 0]])
    tgt_in = torch.tensor([[2, 9, 8, 7, 6], [2, 4, 11, 0, 0], [2, 6, 6, 0, 0], [2, 4, 10, 8, 7]])
    return src, (src != 0).sum(1), tgt_in


@pytest.mark.parametrize("name", MODELS)
def test_forward_returns_logits_and_weights_of_documented_shapes(name: str) -> None:
    model = MODELS[name]()
    src, src_len, tgt_in = batch()
    logits, weights = model(src, src_len, tgt_in)
    assert logits.shape == (4, 5, VOCAB)
    assert weights.shape == (4, model.num_heads, 5, 6)


@pytest.mark.parametrize("inference", [False, True], ids=["grad", "inference_mode"])
@pytest.mark.parametrize("name", MODELS)
def test_decode_step_matches_teacher_forced_forward(name: str, inference: bool) -> None:
    """Under inference_mode (as the searches run) the recurrent decoder steps from its input table."""
    model = MODELS[name]().eval()
    src, src_len, tgt_in = batch()
    logits, weights = model(src, src_len, tgt_in)
    with torch.inference_mode(inference):
        cache, state = model.start_decoding(model.encode(src, src_len))
    for t in range(tgt_in.size(1)):
        with torch.inference_mode(inference):
            log_probs, weights_t, state = model.decode_step(tgt_in[:, t : t + 1], cache, state)
        assert log_probs.dtype == torch.float32
        torch.testing.assert_close(log_probs, F.log_softmax(logits[:, t], dim=-1))
        torch.testing.assert_close(weights_t, weights[:, :, t : t + 1])


@pytest.mark.parametrize("name", MODELS)
def test_teacher_forcing_ratio_zero_feeds_back_greedy_predictions(name: str) -> None:
    model = MODELS[name]().eval()
    src, src_len, tgt_in = batch()
    logits, _ = model(src, src_len, tgt_in, teacher_forcing_ratio=0.0)
    cache, state = model.start_decoding(model.encode(src, src_len))
    tokens = tgt_in[:, :1]
    for t in range(tgt_in.size(1)):
        log_probs, _, state = model.decode_step(tokens, cache, state)
        torch.testing.assert_close(log_probs, F.log_softmax(logits[:, t], dim=-1))
        tokens = log_probs.argmax(-1, keepdim=True)


@pytest.mark.parametrize("name", [*MODELS, "transformer_2_layers"])
def test_attention_by_layer_ends_with_the_weights_forward_returns(name: str) -> None:
    model = (
        transformer_model(decoder_layers=2).eval()
        if name == "transformer_2_layers"
        else MODELS[name]().eval()
    )
    src, src_len, tgt_in = batch()
    _, weights = model(src, src_len, tgt_in)
    by_layer = model.attention_by_layer(src, src_len, tgt_in)
    layers = 2 if name == "transformer_2_layers" else 1
    assert by_layer.shape == (4, layers, model.num_heads, 5, 6)
    torch.testing.assert_close(by_layer[:, -1], weights)


def test_attention_by_layer_gives_each_layer_its_own_distributions() -> None:
    model = transformer_model(decoder_layers=2).eval()
    src, src_len, tgt_in = batch()
    by_layer = model.attention_by_layer(src, src_len, tgt_in)  # [batch, layers, heads, tgt_len, src_len]
    torch.testing.assert_close(by_layer.sum(-1), torch.ones(by_layer.shape[:-1]))
    assert (by_layer[1, ..., 3:] == 0).all()  # padded source positions
    assert not torch.allclose(by_layer[:, 0], by_layer[:, 1])


def no_attention_model() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        VOCAB,
        VOCAB,
        encoder=functools.partial(RecurrentEncoder, hidden_size=HIDDEN),
        attention=NoAttention,
        decoder=functools.partial(RecurrentDecoder, hidden_size=HIDDEN),
        embedding_size=EMB,
    )


def test_attention_by_layer_is_none_without_attention() -> None:
    model = no_attention_model()
    src, src_len, tgt_in = batch()
    assert model.attention_by_layer(src, src_len, tgt_in) is None


def test_teacher_forcing_ratio_below_one_mixes_reference_and_predictions() -> None:
    model = rnn_model().eval()
    src, src_len, tgt_in = batch()
    teacher_forced, _ = model(src, src_len, tgt_in)
    free_running, _ = model(src, src_len, tgt_in, teacher_forcing_ratio=0.0)
    torch.manual_seed(0)
    mixed, _ = model(src, src_len, tgt_in, teacher_forcing_ratio=0.5)
    matches_teacher = torch.isclose(mixed, teacher_forced).all(-1)  # [batch, tgt_len]
    matches_free = torch.isclose(mixed, free_running).all(-1)
    assert (matches_teacher[:, 0] & matches_free[:, 0]).all()  # the first step always reads <bos>
    assert not matches_teacher.all() and not matches_free.all()


def test_teacher_forcing_ratio_outside_zero_one_is_rejected() -> None:
    src, src_len, tgt_in = batch()
    with pytest.raises(ConfigError, match="teacher_forcing_ratio"):
        rnn_model()(src, src_len, tgt_in, teacher_forcing_ratio=1.5)


def test_model_without_attention_returns_no_weights() -> None:
    model = no_attention_model()
    src, src_len, tgt_in = batch()
    logits, weights = model(src, src_len, tgt_in)
    assert logits.shape == (4, 5, VOCAB)
    assert weights is None
    assert model.num_heads == 0


def test_tie_embeddings_shares_the_parameter() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(
        VOCAB,
        VOCAB,
        encoder=functools.partial(RecurrentEncoder, hidden_size=HIDDEN),
        attention=functools.partial(BahdanauAttention, hidden_size=16),
        decoder=functools.partial(RecurrentDecoder, hidden_size=EMB),
        embedding_size=EMB,
        tie_embeddings=True,
    )
    assert model.output_layer.weight is model.tgt_embedding.weight
    with torch.no_grad():
        model.output_layer.weight[5, 0] = 42.0
    assert model.tgt_embedding.weight[5, 0] == 42.0


def test_tie_embeddings_rejects_different_sizes() -> None:
    with pytest.raises(ConfigError, match=r"model.net.tie_embeddings.*\(32\).*\(16\)"):
        rnn_model(tie_embeddings=True)


def test_uniform_init_bounds_parameters_and_zeroes_padding_rows() -> None:
    model = transformer_model(init="uniform", init_range=0.05)
    for name, param in model.named_parameters():
        if "norm" not in name:
            assert param.abs().max() <= 0.05, name
    assert (model.src_embedding.weight[0] == 0).all()
    assert (model.tgt_embedding.weight[0] == 0).all()


def test_init_leaves_layer_norms_at_identity() -> None:
    model = transformer_model(init="uniform")
    assert (model.encoder.norm.weight == 1).all()
    assert (model.encoder.norm.bias == 0).all()


def test_xavier_init_zeroes_biases() -> None:
    model = rnn_model(init="xavier")
    biases = [param for name, param in model.named_parameters() if "bias" in name]
    assert biases and all((bias == 0).all() for bias in biases)


def test_unknown_init_is_rejected() -> None:
    with pytest.raises(ConfigError, match="model.net.init='orthogonal'"):
        rnn_model(init="orthogonal")


def test_default_uniform_init_overfits_a_tiny_batch() -> None:
    model = rnn_model()
    src, src_len, tgt_in = batch()
    tgt_out = torch.cat([tgt_in[:, 1:], torch.zeros(4, 1, dtype=torch.long)], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        logits, _ = model(src, src_len, tgt_in)
        loss = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
