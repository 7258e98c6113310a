"""The vocabulary shortlist: what it keeps, that decoding only picks from it, and that a full one changes nothing."""

import pytest
import torch

from src.decoding import SequenceGenerator
from src.decoding.shortlist import Shortlist
from src.errors import CheckpointError, ConfigError
from src.models.quantization import quantize_int8
from tests.test_seq2seq import VOCAB, batch, rnn_model, transformer_model

# ids: 0-3 are <pad> <unk> <bos> <eos>; the source word 4 always comes with the target word 7, 5 with 8
SRC = [[4, 5], [4, 6], [4, 5, 6], [6]]
TGT = [[7, 8], [7, 9], [7, 8, 10], [11, 9]]


def test_each_source_token_keeps_the_targets_it_co_occurs_with_best_first():
    shortlist = Shortlist.build(SRC, TGT, src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, frequent=1, best=2)
    # Dice(4, 7) = 2 * 3 / (3 + 3) = 1 beats Dice(4, 8) = 2 * 2 / (3 + 2)
    assert shortlist.candidates[4].tolist() == [7, 8]
    assert shortlist.candidates[5].tolist() == [8, 7]  # Dice(5, 8) = 1
    assert shortlist.candidates[0].tolist() == [-1, -1]  # never in a source: nothing
    assert shortlist.frequent.tolist() == [7]  # in 3 of the 4 targets
    ids = shortlist.for_batch(torch.tensor([[5, 0]]))
    assert ids.tolist() == [0, 1, 2, 3, 7, 8]  # the special tokens, the frequent word, 5's candidates; sorted


def test_decoding_picks_only_shortlisted_tokens():
    model = rnn_model().eval()
    src, src_len, _ = batch()
    shortlist = Shortlist(
        candidates=torch.full((VOCAB, 1), 5),
        frequent=torch.tensor([9]),
        always=torch.arange(4),
        tgt_vocab_size=VOCAB,
    )
    for beam_size in (1, 3):
        generator = SequenceGenerator(beam_size=beam_size, max_len_b=6, min_len=3)  # 3 tokens, then <eos>
        restricted = shortlist.restrict(model, src)
        nbest = restricted.full_ids(generator(restricted, src, src_len))
        tokens = {token for hypotheses in nbest for hypothesis in hypotheses for token in hypothesis.tokens}
        assert tokens and tokens <= {0, 1, 2, 5, 9}  # specials (<eos> ends), the candidate, the frequent word


@pytest.mark.parametrize("make_model", [rnn_model, transformer_model])
@pytest.mark.parametrize("beam_size", [1, 4])
def test_a_shortlist_of_the_whole_vocabulary_changes_nothing(make_model, beam_size):
    model = make_model().eval()
    src, src_len, _ = batch()
    everything = torch.arange(4, VOCAB).repeat(VOCAB, 1)
    shortlist = Shortlist(everything, torch.tensor([], dtype=torch.long), torch.tensor([0, 1, 2, 3]), VOCAB)
    generator = SequenceGenerator(beam_size=beam_size, max_len_b=6)
    restricted_model = shortlist.restrict(model, src)
    full, restricted = (
        generator(model, src, src_len),
        restricted_model.full_ids(generator(restricted_model, src, src_len)),
    )
    for a, b in zip(full, restricted, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        torch.testing.assert_close([h.score for h in a], [h.score for h in b])


def test_save_and_load_keep_the_shortlist_and_refuse_other_files(tmp_path):
    shortlist = Shortlist.build(SRC, TGT, VOCAB, VOCAB, frequent=2, best=3)
    shortlist.save(tmp_path / "s.pt")
    loaded = Shortlist.load(tmp_path / "s.pt")
    assert torch.equal(loaded.candidates, shortlist.candidates) and torch.equal(
        loaded.frequent, shortlist.frequent
    )
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a shortlist file"):
        Shortlist.load(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="file not found"):
        Shortlist.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="built for vocabularies of 12 source and 12 target tokens"):
        loaded.check_fits(12, 20, tmp_path / "s.pt")


@pytest.mark.slow
def test_the_command_builds_a_shortlist_that_evaluate_and_translate_read(tiny_checkpoint, tmp_path):
    from src.shortlist import build_shortlist
    from tests.conftest import compose_config, run_entry
    from tests.test_evaluate import evaluate_in_process

    cfg = compose_config("shortlist", [f"ckpt_path={tiny_checkpoint['ckpt']}", f"output={tmp_path / 's.pt'}"])
    path = build_shortlist(cfg)
    assert Shortlist.load(path).frequent.numel() > 0
    full = evaluate_in_process(tiny_checkpoint, tmp_path / "full")
    restricted = evaluate_in_process(tiny_checkpoint, tmp_path / "restricted", f"shortlist={path}")
    assert abs(restricted["bleu"] - full["bleu"]) < 5  # the reverse task's targets are its source tokens
    result = run_entry(
        "src.translate",
        f"ckpt_path={tiny_checkpoint['ckpt']}",
        f"shortlist={path}",
        "int8=true",
        stdin="1 2 3\n",
    )
    assert result.returncode == 0 and result.stdout.strip(), (
        result.stderr
    )  # int8 layers, a float output layer


def test_int8_with_a_shortlist_keeps_only_the_output_layer_float_and_decodes_from_the_shortlist():
    model = rnn_model().eval()
    src, src_len, _ = batch()
    shortlist = Shortlist(torch.full((VOCAB, 1), 5), torch.tensor([9]), torch.arange(4), VOCAB)
    quantized = quantize_int8(model, keep_float=("output_layer",))
    assert type(quantized.output_layer) is torch.nn.Linear
    assert type(quantized.decoder.output_layer) is not torch.nn.Linear  # the other linear layers: int8
    restricted = shortlist.restrict(quantized, src)
    generator = SequenceGenerator(beam_size=2, max_len_b=6, min_len=3)
    nbest = restricted.full_ids(generator(restricted, src, src_len))
    tokens = {token for hypotheses in nbest for hypothesis in hypotheses for token in hypothesis.tokens}
    assert tokens and tokens <= {0, 1, 2, 5, 9}
    with pytest.raises(ValueError, match="float output layer"):
        shortlist.restrict(quantize_int8(model), src)
    with pytest.raises(ValueError, match="keep_float names no layer"):
        quantize_int8(model, keep_float=("output",))
