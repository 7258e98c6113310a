"""`python -m src.analyze attribution`: gradient attribution over the source tokens against the attention."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from src.analyze import analyze
from src.attribution import (
    attribute_sentence,
    compare_tokens,
    format_summary_table,
    require_captum,
    spearman,
    summarize,
)
from src.errors import ConfigError
from tests.conftest import compose_config, run_entry
from tests.toy_models import BOS, EOS, PAD, UNK

pytest.importorskip("captum", reason='Captum is an optional extra: pip install -e ".[analysis]"')
pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SRC, TOKENS = [4, 5, 6, 7], [8, 9, 10]  # a source of 4 tokens, a translation of 3 (+ <eos>)
SMALL_RNN = ("model.net.embedding_size=16", "encoder.hidden_size=16", "decoder.hidden_size=16")


class BlindToPositionModel(nn.Module):
    """A model with the interface attribution uses (`src_embedding`, `forward_embedded`) whose output
    reads every source position except `ignored`: its prediction at each step is a function of the
    previous target token and of the sum of the other positions' embeddings. Its attention is uniform over
    the positions it reads."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, ignored: int, vocab_size: int = 12, hidden: int = 8, seed: int = 0):
        super().__init__()
        self.ignored = ignored
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.src_embedding = nn.Embedding(vocab_size, hidden)
            self.tgt_embedding = nn.Embedding(vocab_size, hidden)
            self.mix = nn.Linear(hidden, hidden)
            self.output_layer = nn.Linear(hidden, vocab_size)

    def forward_embedded(
        self, src_emb: Tensor, src_len: Tensor, mask: Tensor, tgt_in: Tensor
    ) -> tuple[Tensor, Tensor]:
        keep = [j for j in range(src_emb.size(1)) if j != self.ignored]
        source = src_emb[:, keep].sum(dim=1, keepdim=True)  # [batch, 1, hidden]
        logits = self.output_layer(torch.tanh(self.mix(source) + self.tgt_embedding(tgt_in)))
        weights = torch.zeros(src_emb.size(0), 1, tgt_in.size(1), src_emb.size(1))
        weights[..., keep] = 1.0 / len(keep)
        return logits, weights  # [batch, tgt_len, vocab], [batch, 1, tgt_len, src_len]


def tiny_seq2seq(*overrides: str) -> nn.Module:
    cfg = compose_config("train", [*SMALL_RNN, *overrides])
    torch.manual_seed(0)
    return instantiate(cfg.model.net)(src_vocab_size=12, tgt_vocab_size=12).eval()


def test_a_source_token_the_output_cannot_depend_on_gets_zero_attribution():
    result = attribute_sentence(BlindToPositionModel(ignored=2), SRC, TOKENS, UNK, ig_steps=8)
    for method in ("integrated_gradients", "input_x_gradient"):
        scores = result.scores[method]  # [T, S]
        assert scores.shape == (len(TOKENS) + 1, len(SRC))
        assert torch.equal(scores[:, 2], torch.zeros(len(TOKENS) + 1)), method
        assert (scores[:, [0, 1, 3]] != 0).all(), method


def test_erasing_a_token_the_output_cannot_depend_on_drops_nothing():
    result = attribute_sentence(BlindToPositionModel(ignored=1), SRC, TOKENS, UNK, ig_steps=4)
    # the erased copies run as one batch, the sentence alone: float rounding may differ, by ~1e-8
    torch.testing.assert_close(result.drops[:, 1], torch.zeros(len(TOKENS) + 1), atol=1e-6, rtol=0)
    assert (result.drops[:, [0, 2, 3]].abs() > 1e-4).all()


def test_a_seq2seq_that_cannot_see_its_source_gets_zero_attribution_everywhere():
    net = tiny_seq2seq("attention=none")
    seeing = attribute_sentence(net, SRC, TOKENS, UNK, ig_steps=4)
    assert seeing.attention is None
    assert (seeing.scores["integrated_gradients"].abs().sum(dim=1) > 0).all()
    with torch.no_grad():  # no attention and a bridge of zeros: the decoder starts the same for any source
        net.decoder.bridge.weight.zero_()
    blind = attribute_sentence(net, SRC, TOKENS, UNK, ig_steps=4)
    for method, scores in blind.scores.items():
        assert torch.equal(scores, torch.zeros_like(scores)), method
    assert torch.equal(blind.drops, torch.zeros_like(blind.drops))


@pytest.mark.parametrize("attention", ["bahdanau", "luong_dot"])
def test_integrated_gradients_sum_to_the_change_from_the_zero_baseline(attention):
    net = tiny_seq2seq(f"attention={attention}")
    result = attribute_sentence(net, SRC, TOKENS, UNK, methods=["integrated_gradients"], ig_steps=50)
    src = torch.tensor([SRC])
    tgt_in, tgt_out = torch.tensor([[BOS, *TOKENS]]), torch.tensor([[*TOKENS, EOS]])
    with torch.no_grad():
        zero = torch.zeros_like(net.src_embedding(src))
        logits, _ = net.forward_embedded(zero, torch.tensor([len(SRC)]), src != PAD, tgt_in)
    baseline = logits.log_softmax(dim=-1).gather(2, tgt_out.unsqueeze(2))[0, :, 0]  # [T]
    total = result.scores["integrated_gradients"].sum(dim=1)
    assert total == pytest.approx((result.log_probs - baseline).tolist(), abs=1e-3)
    assert result.ig_delta.abs().max() < 1e-3


def test_the_attention_is_the_mean_over_heads_of_what_forward_returns():
    net = tiny_seq2seq("attention=multihead", "attention.num_heads=2")
    result = attribute_sentence(net, SRC, TOKENS, UNK, methods=["input_x_gradient"])
    with torch.no_grad():
        _, attn_weights = net(torch.tensor([SRC]), torch.tensor([len(SRC)]), torch.tensor([[BOS, *TOKENS]]))
    torch.testing.assert_close(result.attention, attn_weights[0].mean(dim=0))


def test_forward_embedded_equals_forward():
    net = tiny_seq2seq()
    src, src_len, tgt_in = torch.tensor([SRC]), torch.tensor([len(SRC)]), torch.tensor([[BOS, *TOKENS]])
    with torch.no_grad():
        logits, attn_weights = net(src, src_len, tgt_in)
        embedded_logits, embedded_weights = net.forward_embedded(
            net.src_embedding(src), src_len, src != PAD, tgt_in
        )
    assert torch.equal(logits, embedded_logits)
    assert torch.equal(attn_weights, embedded_weights)


def test_spearman_of_hand_made_rankings():
    assert spearman(torch.tensor([0.1, 0.5, 0.2]), torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(1.0)
    assert spearman(torch.tensor([0.1, 0.5, 0.2]), torch.tensor([3.0, 1.0, 2.0])) == pytest.approx(-1.0)
    # ranks (0, 1.5, 1.5) against (0, 1, 2): covariance 1.5 / sqrt(1.5 * 2)
    assert spearman(torch.tensor([1.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(
        1.5 / math.sqrt(3.0)
    )
    assert math.isnan(spearman(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 2.0])))


def test_correlation_agreement_and_erasure_of_a_hand_made_sentence():
    attention = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # tops: 0, then 2
    scores = torch.tensor(
        [[-0.9, 0.3, 0.1], [0.5, 0.2, 0.1]]
    )  # |scores| tops: 0, then 0 (the sign is ignored)
    drops = torch.tensor([[0.4, 0.1, 0.1], [0.3, 0.0, 0.6]])
    rows = compare_tokens(attention, scores, drops)
    # row 1: ranks (0.5, 0.5, 2) against (2, 1, 0), centred (-0.5, -0.5, 1) . (1, 0, -1) = -1.5 / sqrt(1.5 * 2)
    assert [row["spearman"] for row in rows] == pytest.approx([1.0, -math.sqrt(3) / 2])
    assert [row["top_agrees"] for row in rows] == [1.0, 0.0]
    assert [row["drop_attention"] for row in rows] == pytest.approx([0.4, 0.6])
    assert [row["drop_attribution"] for row in rows] == pytest.approx([0.4, 0.3])
    assert [row["drop_random"] for row in rows] == pytest.approx([0.2, 0.3])
    summary = summarize(rows)
    assert summary["tokens"] == 2 and summary["spearman_tokens"] == 2
    assert summary["spearman"] == pytest.approx((1.0 - math.sqrt(3) / 2) / 2)
    assert summary["top_agreement"] == pytest.approx(0.5)
    assert summary["erasure"] == pytest.approx(
        {
            "attention": 0.5,
            "attribution": 0.35,
            "random": 0.25,
            "attribution_larger": 0.0,
            "attention_larger": 0.5,
        }
    )


def test_without_attention_only_the_attribution_is_summarized():
    summary = summarize(compare_tokens(None, torch.tensor([[0.2, -0.6]]), torch.tensor([[0.1, 0.5]])))
    assert summary["spearman"] is None and summary["top_agreement"] is None
    assert summary["erasure"]["attention"] is None
    assert summary["erasure"]["attribution"] == pytest.approx(0.5)
    assert "| integrated gradients | — | — | — | 0.5000 | 0.3000 | — |" in format_summary_table(
        {"integrated_gradients": summary}
    )


def test_missing_captum_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[analysis\]"'):
        require_captum()


def test_ig_steps_below_one_is_a_config_error(tmp_path):
    cfg = compose_config(
        "analyze",
        [
            "analysis=attribution",
            "ckpt_path=none.ckpt",
            f"paths.output_dir={tmp_path}",
            "attribution.ig_steps=0",
        ],
    )
    with pytest.raises(ConfigError, match="attribution.ig_steps=0 must be an integer >= 1"):
        analyze(cfg)


@pytest.mark.slow
def test_attribution_command_writes_the_table_the_figure_and_every_sentence(tiny_checkpoint, tmp_path):
    result = run_entry(
        "src.analyze",
        "attribution",
        f"ckpt_path={tiny_checkpoint['ckpt']}",
        f"data.test_path={tiny_checkpoint['test']}",
        "attribution.max_sentences=3",
        "attribution.ig_steps=4",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "analyze" / "runs").iterdir()
    summary = json.loads((run_dir / "attribution.json").read_text())
    assert summary["sentences"] == 3 and summary["attention"] is True
    assert set(summary["methods"]) == {"integrated_gradients", "input_x_gradient"}
    for method in summary["methods"].values():
        assert method["tokens"] == summary["output_tokens"]
        assert -1.0 <= method["spearman"] <= 1.0
        assert 0.0 <= method["top_agreement"] <= 1.0
    sentences = [
        json.loads(line) for line in (run_dir / "attribution_sentences.jsonl").read_text().splitlines()
    ]
    assert len(sentences) == 3
    for sentence in sentences:
        shape = (len(sentence["output_tokens"]), len(sentence["src_tokens"]))
        assert torch.tensor(sentence["attention"]).shape == shape
        assert torch.tensor(sentence["attribution"]["integrated_gradients"]).shape == shape
        assert sentence["output_tokens"][-1] == "<eos>"
    assert (run_dir / "attribution.png").read_bytes().startswith(PNG_MAGIC)
    assert (run_dir / "attribution.md").read_text().startswith("| attribution | Spearman")
    assert "| integrated gradients |" in result.stdout
    assert Path(summary["test_path"]) == Path(tiny_checkpoint["test"]).resolve()
