"""Property-based tests (hypothesis) of the text pipeline: TSV reader, tokenizers, vocabulary, codec.

Complements the properties in test_tsv.py (pairs survive a write/read), test_tokenizers.py (the character
tokenizer round trip) and test_vocab.py (encode/decode of in-vocabulary tokens).
"""

import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.data.codec import Codec
from src.data.tokenizers import CharTokenizer, SentencePieceTokenizer, Tokenizer, WordTokenizer
from src.data.tsv import read_parallel_tsv
from src.data.vocab import SPECIALS, UNK_ID, Vocabulary

# any text a file can hold (no lone surrogates)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
# text the TSV reader lets through to training (no control characters): SentencePiece keeps U+0085 (NEL,
# a control character that str.isspace() counts as whitespace) inside a piece, so for that tokenizer the
# vocabulary-safety property holds for training text only (at translation time the piece is just <unk>)
training_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)
word_tokenizers = st.builds(WordTokenizer, lowercase=st.booleans(), split_punctuation=st.booleans())

TRAINING_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "big", "red", "house"]
TRAINING_TEXT = [" ".join(TRAINING_WORDS[i:] + TRAINING_WORDS[:i]) for i in range(len(TRAINING_WORDS))] * 5


@pytest.fixture(scope="module")
def spm_tokenizer() -> SentencePieceTokenizer:
    tokenizer = SentencePieceTokenizer(vocab_size=30)
    tokenizer.fit(TRAINING_TEXT)
    return tokenizer


def assert_vocabulary_safe(tokens: list[str]) -> None:
    """What a one-token-per-line vocabulary file needs: no empty token, no whitespace inside one."""
    for token in tokens:
        assert token and not any(char.isspace() for char in token), repr(token)


# ------------------------------------------------------------------------------------------ tokenizers


@settings(max_examples=200, deadline=None)
@given(tokenizer=word_tokenizers, text=text)
def test_word_tokens_are_vocabulary_safe(tokenizer, text):
    assert_vocabulary_safe(tokenizer.tokenize(text))


@settings(max_examples=200, deadline=None)
@given(tokenizer=word_tokenizers, text=text)
def test_word_tokenize_detokenize_tokenize_is_stable(tokenizer, text):
    tokens = tokenizer.tokenize(text)
    assert tokenizer.tokenize(tokenizer.detokenize(tokens)) == tokens


@settings(max_examples=200, deadline=None)
@given(tokenizer=word_tokenizers, text=text)
def test_word_tokenize_is_idempotent_on_its_own_output(tokenizer, text):
    once = " ".join(tokenizer.tokenize(text))
    assert " ".join(tokenizer.tokenize(once)) == once


@settings(max_examples=100, deadline=None)
@given(text=text)
def test_char_tokens_are_vocabulary_safe(text):
    assert_vocabulary_safe(CharTokenizer().tokenize(text))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=training_text)
def test_sentencepiece_tokens_are_vocabulary_safe_for_training_text(spm_tokenizer, text):
    assert_vocabulary_safe(spm_tokenizer.tokenize(text))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(TRAINING_WORDS), min_size=1, max_size=12))
def test_sentencepiece_round_trips_text_of_known_characters(spm_tokenizer, words):
    sentence = " ".join(words)
    assert spm_tokenizer.detokenize(spm_tokenizer.tokenize(sentence)) == sentence


# ------------------------------------------------------------------------------------------ vocabulary

vocab_token = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(
    lambda token: not any(char.isspace() for char in token) and token not in SPECIALS
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tokens=st.lists(vocab_token, max_size=30, unique=True))
def test_vocabulary_file_round_trip(tmp_path, tokens):
    vocab = Vocabulary(tokens)
    vocab.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocab
    assert Vocabulary.from_list(vocab.to_list()) == vocab


@settings(max_examples=100, deadline=None)
@given(token_lists=st.lists(st.lists(vocab_token, max_size=6), max_size=8), min_freq=st.integers(1, 3))
def test_built_vocabulary_encodes_what_it_kept_and_unk_for_the_rest(token_lists, min_freq):
    vocab = Vocabulary.build(token_lists, min_freq=min_freq)
    kept = set(vocab.to_list()[len(SPECIALS) :])
    for tokens in token_lists:
        ids = vocab.encode(tokens)
        assert [token in kept for token in tokens] == [i != UNK_ID for i in ids]
        assert vocab.lookup(ids) == [token if token in kept else "<unk>" for token in tokens]


# --------------------------------------------------------------------------------------------- codec


def fitted_codec(tokenizer: Tokenizer, texts: list[str]) -> Codec:
    tokenizer.fit(texts)
    vocab = Vocabulary.build([tokenizer.tokenize(t) for t in texts])
    return Codec(tokenizer, tokenizer, vocab, vocab)


@pytest.mark.parametrize(
    "make",
    [lambda: WordTokenizer(lowercase=True, split_punctuation=True), CharTokenizer, SentencePieceTokenizer],
)
@settings(max_examples=25, deadline=None)
@given(texts=st.lists(training_text.filter(str.strip), min_size=1, max_size=6), probe=text)
def test_codec_survives_a_weights_only_checkpoint_unchanged(make, texts, probe):
    codec = fitted_codec(make(), texts)
    buffer = io.BytesIO()
    torch.save({"codec": codec.state_dict()}, buffer)
    buffer.seek(0)
    restored = Codec.from_state_dict(torch.load(buffer, weights_only=True)["codec"])
    for sentence in [*texts, probe]:
        assert restored.encode_src(sentence) == codec.encode_src(sentence)
        ids = codec.encode_tgt(sentence)
        assert restored.decode_tgt(ids) == codec.decode_tgt(ids)


# ----------------------------------------------------------------------------------------------- TSV

side = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"), min_size=1
).filter(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(st.tuples(side, side), min_size=1, max_size=5),
    bom=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    final_newline=st.booleans(),
)
def test_pairs_read_back_whatever_the_bom_and_line_endings(tmp_path, pairs, bom, newline, final_newline):
    body = newline.join(f"{s}\t{t}" for s, t in pairs) + (newline if final_newline else "")
    path = tmp_path / "pairs.tsv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode("utf-8"))
    assert read_parallel_tsv(path).pairs == pairs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(st.tuples(side, side), min_size=1, max_size=5),
    bad=st.lists(
        st.sampled_from([b"no tab", b"a\tb\tc", b"\tx", b"\xff\tq", b"a\x00\tb", b"   "]), max_size=4
    ),
    data=st.data(),
)
def test_skip_mode_keeps_exactly_the_good_pairs_in_order(tmp_path, pairs, bad, data):
    lines = [f"{s}\t{t}".encode() for s, t in pairs]
    for line in bad:
        lines.insert(data.draw(st.integers(0, len(lines))), line)
    path = tmp_path / "mixed.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    corpus = read_parallel_tsv(path, on_bad_line="skip")
    assert corpus.pairs == pairs
    assert len(corpus.skipped_lines) == len(bad)
