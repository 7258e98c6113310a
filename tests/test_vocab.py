"""Vocabulary: fixed special ids, deterministic building, encode/decode, the one-token-per-line file."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.data.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocabulary
from src.errors import DataError

SENTENCES = [["a", "b", "c"], ["a", "b"], ["a", "d"], ["e"]]


def test_special_tokens_have_fixed_ids():
    vocab = Vocabulary(["x"])
    assert (
        vocab.encode(["<pad>", "<unk>", "<bos>", "<eos>"]) == [PAD_ID, UNK_ID, BOS_ID, EOS_ID] == [0, 1, 2, 3]
    )
    assert vocab.to_list()[:4] == SPECIALS


def test_build_orders_by_frequency_then_token():
    assert Vocabulary.build(SENTENCES).to_list()[4:] == ["a", "b", "c", "d", "e"]
    assert Vocabulary.build([["z", "y", "y"], ["x", "x"]]).to_list()[4:] == ["x", "y", "z"]


def test_build_does_not_depend_on_input_order():
    shuffled = [list(s) for s in SENTENCES]
    random.Random(0).shuffle(shuffled)
    for sentence in shuffled:
        random.Random(1).shuffle(sentence)
    assert Vocabulary.build(shuffled) == Vocabulary.build(SENTENCES)


def test_min_freq_drops_rare_tokens():
    assert Vocabulary.build(SENTENCES, min_freq=2).to_list()[4:] == ["a", "b"]


def test_max_size_counts_only_non_special_tokens():
    vocab = Vocabulary.build(SENTENCES, max_size=2)
    assert len(vocab) == len(SPECIALS) + 2
    assert vocab.to_list()[4:] == ["a", "b"]


def test_build_ignores_special_tokens_in_the_text():
    assert Vocabulary.build([["<unk>", "a", "<pad>"]]).to_list() == [*SPECIALS, "a"]


def test_encode_maps_unknown_tokens_to_unk():
    assert Vocabulary(["a", "b"]).encode(["b", "zzz", "a"]) == [5, UNK_ID, 4]


def test_decode_stops_at_eos_and_drops_pad_and_bos():
    vocab = Vocabulary(["a", "b"])
    assert vocab.decode([BOS_ID, 4, PAD_ID, 5, UNK_ID, EOS_ID, 4, 4]) == ["a", "b", "<unk>"]


def test_lookup_keeps_every_id():
    assert Vocabulary(["a"]).lookup([BOS_ID, 4, EOS_ID, PAD_ID]) == ["<bos>", "a", "<eos>", "<pad>"]


def test_to_list_from_list_round_trip():
    vocab = Vocabulary.build(SENTENCES)
    assert Vocabulary.from_list(vocab.to_list()) == vocab


def test_save_writes_one_token_per_line_in_id_order(tmp_path):
    path = tmp_path / "vocab.txt"
    Vocabulary(["é", "▁", "<U+00A0>"]).save(path)
    assert path.read_text(encoding="utf-8") == "<pad>\n<unk>\n<bos>\n<eos>\né\n▁\n<U+00A0>\n"


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary(["ß", "\u2581x", "l'", "日本", "\ufeffbom"])
    vocab.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocab


@pytest.mark.parametrize("token", ["", "a b", "a\nb", "\u2028", "\u00a0"], ids=repr)
def test_token_that_would_break_the_file_is_rejected(token):
    with pytest.raises(ValueError, match="empty or contains whitespace"):
        Vocabulary([token])


def test_duplicate_tokens_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "a"])


def test_load_rejects_a_file_without_the_special_tokens(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"vocab\.txt: not a readable vocabulary file"):
        Vocabulary.load(path)


token = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1)


@settings(max_examples=100, deadline=None)
@given(
    tokens=st.lists(token, min_size=1, max_size=20, unique=True).filter(
        lambda ts: not set(ts) & set(SPECIALS)
    )
)
def test_encode_decode_round_trip_for_in_vocabulary_tokens(tokens):
    vocab = Vocabulary(tokens)
    sentence = random.Random(0).choices(tokens, k=10)
    assert vocab.decode(vocab.encode(sentence)) == sentence
