"""`python -m src.export`: a Transformer in CTranslate2 computes what ours computes."""

import functools
import shutil

import pytest
import torch
import torch.nn.functional as F

from src.checkpoint import load_model
from src.data.batch import collate_sources, pad
from src.data.codec import Codec
from src.data.tokenizers import WordTokenizer
from src.data.tsv import read_parallel_tsv
from src.data.vocab import BOS_ID, EOS_ID, Vocabulary
from src.decoding import SequenceGenerator
from src.errors import ConfigError
from src.export import export, export_ctranslate2, translate_ctranslate2
from src.models.attention import MultiHeadAttention
from src.models.decoders import TransformerDecoder
from src.models.encoders import TransformerEncoder
from src.models.seq2seq import Seq2Seq
from src.translator import Translator
from tests.conftest import compose_config
from tests.test_seq2seq import rnn_model

ctranslate2 = pytest.importorskip("ctranslate2")
VOCAB = 16
# of one length: CTranslate2 takes one length limit per batch, ours one per sentence (an untrained model
# always runs into it)
SOURCES = ["w1 w2 w3 w4", "w5 w6 w8 w8", "w7 w0 w1 w11", "w9 w10 w11 w0"]


def transformer(positions: str = "sinusoidal") -> Seq2Seq:
    torch.manual_seed(0)
    sizes = dict(d_model=32, num_layers=2, num_heads=4, d_ff=64, positions=positions)
    return Seq2Seq(
        VOCAB,
        VOCAB,
        encoder=functools.partial(TransformerEncoder, **sizes),
        attention=functools.partial(MultiHeadAttention, num_heads=4, hidden_size=32),
        decoder=functools.partial(TransformerDecoder, **sizes),
        embedding_size=32,
        init="xavier",
    ).eval()


def codec() -> Codec:
    vocab = Vocabulary([f"w{i}" for i in range(VOCAB - 4)])
    return Codec(WordTokenizer(), WordTokenizer(), vocab, vocab)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_the_exported_model_gives_our_log_probabilities(tmp_path, positions):
    net, words = transformer(positions), codec()
    engine = ctranslate2.Translator(str(export_ctranslate2(net, words, tmp_path / "ct2")), device="cpu")
    targets = ["w3 w1 w5", "w0", "w2 w2 w7 w9 w11 w4", "w6 w8"]
    scores = engine.score_batch([words.src_tokens(s) for s in SOURCES], [t.split() for t in targets])
    src, src_len = collate_sources([words.encode_src(s) for s in SOURCES])
    target_ids = [words.encode_tgt(t) for t in targets]
    logits, _ = net(src, src_len, pad([[BOS_ID, *ids] for ids in target_ids]))
    log_probs = F.log_softmax(logits, dim=-1)  # [batch, tgt_len, vocab]
    for score, ids, row in zip(scores, target_ids, log_probs, strict=True):
        ours = [row[t, token].item() for t, token in enumerate([*ids, EOS_ID])]  # the words, then <eos>
        torch.testing.assert_close(score.log_probs, ours, atol=1e-4, rtol=0)


def test_a_recurrent_model_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="exports Transformer models only.*no recurrent"):
        export_ctranslate2(rnn_model(), codec(), tmp_path / "ct2")


@pytest.mark.slow
def test_the_command_exports_a_trained_checkpoint_that_loads_on_its_own(
    tiny_transformer_checkpoint, tmp_path
):
    ckpt = tiny_transformer_checkpoint["ckpt"]
    folder = export(compose_config("export", [f"ckpt_path={ckpt}", f"output={tmp_path / 'ct2'}"]))
    assert (folder / "model.bin").is_file()
    engine = ctranslate2.Translator(str(folder), device="cpu")
    shutil.rmtree(folder)  # the weights are in memory once loaded (the benchmark relies on it)
    loaded = load_model(ckpt)
    sources = [source for source, _ in read_parallel_tsv(tiny_transformer_checkpoint["test"]).pairs]
    for beam_size in (1, 3):
        generator = SequenceGenerator(beam_size=beam_size)
        ours = [
            nbest[0].tokens
            for nbest in Translator(loaded.net.eval(), loaded.codec, generator).translate(sources)
        ]
        theirs = translate_ctranslate2(engine, loaded.codec, sources, beam_size, 1.5, 10)
        same = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(sources)
        assert same >= 0.9, f"beam {beam_size}: {same:.0%} of the translations are the same"
