"""Head gates, importance and pruning (src/heads.py, HeadGate in src/models/attention.py)."""

from functools import partial

import pytest
import torch
from torch import nn

from src.data.batch import collate
from src.errors import ConfigError
from src.heads import (
    HeadImportance,
    current_mask,
    head_importance,
    head_mask,
    heads_to_prune,
)
from src.models.attention import HeadGate, MultiHeadAttention, gated_self_attention
from src.models.decoders import RecurrentDecoder, TransformerDecoder
from src.models.encoders import RecurrentEncoder, TransformerEncoder
from src.models.seq2seq import Seq2Seq

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 12
SIZES = {"d_model": 16, "num_layers": 2, "num_heads": 2, "d_ff": 32, "dropout": 0.0}


def transformer(seed: int = 0) -> Seq2Seq:
    """Transformer encoder and decoder with multi-head cross-attention: 2 layers x 2 heads of each kind."""
    torch.manual_seed(seed)
    return Seq2Seq(
        VOCAB,
        VOCAB,
        partial(TransformerEncoder, **SIZES),
        partial(MultiHeadAttention, num_heads=4, hidden_size=16),
        partial(TransformerDecoder, **SIZES),
        embedding_size=16,
    ).eval()


def recurrent(seed: int = 0, head_mask: dict[str, list[list[float]]] | None = None) -> Seq2Seq:
    """An LSTM encoder-decoder with 4-head cross-attention (its only multi-head attention)."""
    torch.manual_seed(seed)
    return Seq2Seq(
        VOCAB,
        VOCAB,
        partial(RecurrentEncoder, hidden_size=16, dropout=0.0),
        partial(MultiHeadAttention, num_heads=4, hidden_size=16),
        partial(RecurrentDecoder, hidden_size=16, dropout=0.0),
        embedding_size=16,
        head_mask=head_mask,
    ).eval()


def batch(seed: int = 0, size: int = 4):
    """Random (source, reference) id lists of 2-6 tokens, as a teacher-forcing Batch (with padding)."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(size):
        src_len, tgt_len = torch.randint(2, 7, (2,), generator=generator).tolist()
        src = torch.randint(4, VOCAB, (src_len,), generator=generator).tolist()
        tgt = torch.randint(4, VOCAB, (tgt_len,), generator=generator).tolist()
        examples.append((src, tgt, "", ""))
    return collate(examples)


def logits(net: Seq2Seq, data) -> torch.Tensor:
    with torch.no_grad():
        return net(data.src, data.src_len, data.tgt_in)[0]


def zero_value_head(net: Seq2Seq, kind: str, layer: int, head: int) -> None:
    """Wire one head's output to zero: its value projection (weights and bias) becomes 0."""
    with torch.no_grad():
        if kind == "cross":
            if isinstance(net.decoder, RecurrentDecoder):
                attention = net.decoder.attention
            else:
                attention = net.decoder.layers[layer].cross_attention
            rows = slice(head * attention.head_size, (head + 1) * attention.head_size)
            attention.value_layer.weight[rows] = 0.0
            attention.value_layer.bias[rows] = 0.0
            return
        module = (
            net.encoder.layers[layer].self_attn
            if kind == "encoder"
            else net.decoder.layers[layer].self_attention
        )
        d_model, head_size = module.embed_dim, module.head_dim
        rows = slice(2 * d_model + head * head_size, 2 * d_model + (head + 1) * head_size)  # the V part
        module.in_proj_weight[rows] = 0.0
        module.in_proj_bias[rows] = 0.0


def test_gated_self_attention_equals_pytorchs_multihead_attention():
    torch.manual_seed(0)
    module = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(3, 5, 16)
    keep = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    future = torch.ones(5, 5, dtype=torch.bool).triu(diagonal=1)
    expected, expected_weights = module(
        x, x, x, key_padding_mask=~keep, attn_mask=future, average_attn_weights=False
    )
    output, weights = gated_self_attention(module, x, keep, future, HeadGate(4, kind="encoder"))
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("build", [transformer, recurrent], ids=["transformer", "recurrent"])
def test_gates_of_ones_leave_the_output_unchanged(build):
    net, data = build(), batch()
    expected = logits(net, data)
    for gates in net.head_gates().values():
        for gate in gates:
            gate.set(torch.ones(gate.num_heads))  # set: every head computed one by one, times 1
    torch.testing.assert_close(logits(net, data), expected, atol=1e-5, rtol=0)


def test_a_mask_of_ones_sets_no_gate():
    net = transformer()
    net.set_head_mask(head_mask(net, []))
    assert all(gate.values is None for gates in net.head_gates().values() for gate in gates)


def test_the_model_lists_its_gates_by_kind_and_layer():
    assert {kind: len(gates) for kind, gates in transformer().head_gates().items()} == {
        "encoder": 2,
        "decoder": 2,
        "cross": 2,
    }
    assert {kind: len(gates) for kind, gates in recurrent().head_gates().items()} == {"cross": 1}


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_pruning_all_heads_of_a_layer_changes_the_output(kind):
    net, data = transformer(), batch()
    expected = logits(net, data)
    mask = head_mask(net, [(kind, 0, head) for head in range(net.head_gates()[kind][0].num_heads)])
    net.set_head_mask(mask)
    assert (logits(net, data) - expected).abs().max() > 1e-3


def test_pruning_one_head_is_what_zeroing_its_values_does():
    net, data = transformer(), batch()
    net.set_head_mask(head_mask(net, [("encoder", 1, 0)]))
    pruned = logits(net, data)
    wired = transformer()
    zero_value_head(wired, "encoder", 1, 0)
    torch.testing.assert_close(pruned, logits(wired, data), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "build, head",
    [
        (transformer, ("encoder", 1, 0)),
        (transformer, ("decoder", 0, 1)),
        (transformer, ("cross", 1, 2)),
        (recurrent, ("cross", 0, 3)),
    ],
    ids=["encoder", "decoder", "transformer-cross", "recurrent-cross"],
)
def test_importance_of_a_head_wired_to_zero_is_zero(build, head):
    net = build()
    zero_value_head(net, *head)
    importance = head_importance(net, [batch(seed) for seed in range(2)])
    kind, layer, index = head
    assert importance.scores[kind][layer, index].item() == 0.0
    others = torch.cat([grid.flatten() for grid in importance.scores.values()])
    assert (others > 0).sum() == others.numel() - 1


def test_importance_is_the_mean_over_sentences_of_each_ones_absolute_gradient():
    net, data = transformer(), batch(size=3)
    together = head_importance(net, [data])
    singles = [
        head_importance(net, [collate([(src, tgt, "", "")])])
        for src, tgt in zip(_ids(data.src), _ids(data.tgt_in, skip_first=True), strict=True)
    ]
    for kind, scores in together.scores.items():
        mean = torch.stack([single.scores[kind] for single in singles]).mean(dim=0)
        torch.testing.assert_close(scores, mean, atol=1e-5, rtol=1e-4)
    assert together.sentences == 3


def _ids(padded: torch.Tensor, skip_first: bool = False) -> list[list[int]]:
    return [[i for i in row[1 if skip_first else 0 :] if i != 0] for row in padded.tolist()]


def test_importance_leaves_the_gates_as_they_were():
    net = transformer()
    net.set_head_mask(head_mask(net, [("decoder", 1, 1)]))
    before = current_mask(net)
    head_importance(net, [batch()])
    assert current_mask(net) == before
    assert net.head_gates()["encoder"][0].values is None


def test_ranking_puts_the_least_important_head_first_and_normalizes_by_layer():
    importance = HeadImportance(
        {"encoder": torch.tensor([[1.0, 3.0], [10.0, 20.0]]), "cross": torch.tensor([[0.5, 0.1]])}, 1
    )
    assert importance.ranking(normalize_by_layer=False)[:3] == [
        ("cross", 0, 1),
        ("cross", 0, 0),
        ("encoder", 0, 0),
    ]
    # per layer / L2 norm: encoder 0 -> 0.32, 0.95; encoder 1 -> 0.45, 0.89; cross -> 0.98, 0.20
    assert importance.ranking(normalize_by_layer=True) == [
        ("cross", 0, 1),
        ("encoder", 0, 0),
        ("encoder", 1, 0),
        ("encoder", 1, 1),
        ("encoder", 0, 1),
        ("cross", 0, 0),
    ]
    assert heads_to_prune(importance.ranking(), 0.5) == [
        ("cross", 0, 1),
        ("encoder", 0, 0),
        ("encoder", 1, 0),
    ]


def test_a_head_mask_that_does_not_fit_the_model_is_a_config_error():
    net = transformer()
    with pytest.raises(ConfigError, match=r"head_mask.encoder has \[3, 2\] heads per layer"):
        net.set_head_mask({"encoder": [[1, 0, 1], [1, 1]]})
    with pytest.raises(ConfigError, match="no multi-head decoder attention"):
        recurrent().set_head_mask({"decoder": [[1, 0]]})


def test_a_head_mask_in_the_config_builds_a_pruned_model():
    mask = {"cross": [[1.0, 0.0, 1.0, 1.0]]}
    net = recurrent(head_mask=mask)
    assert current_mask(net) == mask
