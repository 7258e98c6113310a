"""Every encoder x attention x decoder combination, built from the YAML files the way Hydra builds them:
valid ones train (forward, backward, overfit a tiny batch); invalid ones raise ConfigError."""

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from src.errors import ConfigError
from src.models.seq2seq import Seq2Seq

CONF = Path(__file__).resolve().parents[1] / "conf"
ENCODERS = ["lstm", "gru", "conv", "transformer"]
ATTENTIONS = [
    "bahdanau",
    "luong_dot",
    "luong_general",
    "luong_concat",
    "scaled_dot",
    "multihead",
    "coverage",
    "none",
]
DECODERS = ["lstm", "gru", "transformer"]
INVALID = {("coverage", "transformer"), ("none", "transformer")}

# shrinks any option a YAML file sets; options a file does not set are left alone
TINY = {
    "hidden_size": 32,
    "d_model": 32,
    "num_heads": 2,
    "d_ff": 64,
    "num_layers": 1,
    "dropout": 0.0,
    "max_positions": 16,
}
VOCAB = 12
# four sentences of content ids 4..11; the target is the reversed source
SOURCES = [[4, 5, 6, 7, 8, 9], [10, 11, 4], [6, 6, 9, 5], [11, 7, 8, 10, 4]]
# options Seq2Seq completes, so no YAML file sets them
COMPLETED_BY_MODEL = {"input_size", "embedding_size", "memory_size", "encoder_final_size", "attention"}
COMPLETED_BY_DECODER = {"query_size", "key_size"}


def load(group: str, option: str):
    """The partial constructor that `conf/<group>/<option>.yaml` builds, with tiny sizes."""
    config = OmegaConf.load(CONF / group / f"{option}.yaml")
    for key, value in TINY.items():
        if key in config:
            config[key] = value
    return instantiate(config)


def build(encoder: str, attention: str, decoder: str) -> Seq2Seq:
    return Seq2Seq(
        VOCAB,
        VOCAB,
        encoder=load("encoder", encoder),
        attention=load("attention", attention),
        decoder=load("decoder", decoder),
        embedding_size=32,
        # at these tiny sizes uniform(-0.1, 0.1) is ~3x smaller than Glorot and needs ~4x more steps
        init="xavier",
    )


def pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [0] * (width - len(row)) for row in rows])


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(src, src_len, tgt_in, tgt_out) with BOS=2, EOS=3, PAD=0."""
    targets = [row[::-1] for row in SOURCES]
    src = pad(SOURCES)
    src_len = torch.tensor([len(row) for row in SOURCES])
    tgt_in = pad([[2, *row] for row in targets])
    tgt_out = pad([[*row, 3] for row in targets])
    return src, src_len, tgt_in, tgt_out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread than on threads that contend for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VALID = [
    pytest.param(e, a, d, id=f"{e}-{a}-{d}")
    for e in ENCODERS
    for a in ATTENTIONS
    for d in DECODERS
    if (a, d) not in INVALID
]


@pytest.mark.parametrize(("encoder", "attention", "decoder"), VALID)
def test_combination_overfits_a_tiny_batch(encoder: str, attention: str, decoder: str) -> None:
    torch.manual_seed(0)
    model = build(encoder, attention, decoder)
    src, src_len, tgt_in, tgt_out = tiny_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    real = tgt_out != 0
    for _ in range(100):
        logits, _ = model(src, src_len, tgt_in)
        loss = F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=0)
        if loss.item() < 0.1 or (logits.argmax(-1) == tgt_out)[real].all():
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    else:
        pytest.fail(f"did not overfit 4 sentences in 100 steps (loss {loss.item():.3f})")


@pytest.mark.parametrize(("encoder", "attention", "decoder"), VALID)
def test_combination_decode_step_matches_forward(encoder: str, attention: str, decoder: str) -> None:
    torch.manual_seed(0)
    model = build(encoder, attention, decoder).eval()
    src, src_len, tgt_in, _ = tiny_batch()
    logits, weights = model(src, src_len, tgt_in)
    cache, state = model.start_decoding(model.encode(src, src_len))
    for t in range(tgt_in.size(1)):
        log_probs, weights_t, state = model.decode_step(tgt_in[:, t : t + 1], cache, state)
        torch.testing.assert_close(log_probs, F.log_softmax(logits[:, t], dim=-1))
        if weights is not None:
            torch.testing.assert_close(weights_t, weights[:, :, t : t + 1])


@pytest.mark.parametrize(
    ("encoder", "attention", "decoder"),
    [pytest.param(e, a, d, id=f"{e}-{a}-{d}") for e in ENCODERS for (a, d) in sorted(INVALID)],
)
def test_invalid_combination_raises_config_error(encoder: str, attention: str, decoder: str) -> None:
    with pytest.raises(ConfigError, match=f"decoder=transformer cannot use attention={attention}"):
        build(encoder, attention, decoder)


@pytest.mark.parametrize(
    ("group", "option"),
    [
        (g, o)
        for g, options in [("encoder", ENCODERS), ("attention", ATTENTIONS), ("decoder", DECODERS)]
        for o in options
    ],
)
def test_yaml_sets_every_constructor_option(group: str, option: str) -> None:
    config = OmegaConf.load(CONF / group / f"{option}.yaml")
    parameters = set(inspect.signature(get_class(config._target_)).parameters)
    options = {key for key in config if not key.startswith("_")}
    assert options == parameters - COMPLETED_BY_MODEL - COMPLETED_BY_DECODER


@pytest.mark.parametrize("option", ATTENTIONS)
def test_attention_name_is_its_config_option(option: str) -> None:
    config = OmegaConf.load(CONF / "attention" / f"{option}.yaml")
    assert get_class(config._target_).name == option
