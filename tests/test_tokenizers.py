"""Tokenizers: splitting, round trips, fitting SentencePiece, and rebuilding from a state dict."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    tokenizer_from_state_dict,
)
from src.errors import CheckpointError

CORPUS = [
    "the cat sat on the mat .",
    "the dog sat on the log .",
    "a cat and a dog are friends .",
    "i am happy to see the cat .",
    "you are taller than the dog .",
] * 20


@pytest.fixture(scope="module")
def fitted_spm() -> SentencePieceTokenizer:
    tokenizer = SentencePieceTokenizer(vocab_size=40)
    tokenizer.fit(CORPUS)
    return tokenizer


def test_word_tokenizer_splits_on_any_whitespace_including_no_break_spaces():
    assert WordTokenizer().tokenize("Va\u202f!  Tu\u00a0es\tlà") == ["Va", "!", "Tu", "es", "là"]


def test_word_tokenizer_lowercases_when_asked():
    assert WordTokenizer(lowercase=True).tokenize("Tom IS Here") == ["tom", "is", "here"]


def test_word_tokenizer_keeps_punctuation_attached_by_default():
    assert WordTokenizer().tokenize("I'm here.") == ["I'm", "here."]


def test_word_tokenizer_splits_every_punctuation_character():
    tokens = WordTokenizer(split_punctuation=True).tokenize("J'ai dit: «non»...")
    assert tokens == ["J", "'", "ai", "dit", ":", "«", "non", "»", ".", ".", "."]


def test_word_detokenize_attaches_english_punctuation_and_contractions():
    tokenizer = WordTokenizer(split_punctuation=True)
    assert (
        tokenizer.detokenize(["i", "don", "'", "t", "know", ",", "do", "you", "?", "(", "yes", ")"])
        == "i don't know, do you? (yes)"
    )


def test_word_detokenize_rejoins_french_elision_and_hyphens():
    tokenizer = WordTokenizer(split_punctuation=True)
    assert (
        tokenizer.detokenize(["j", "'", "ai", "faim", ".", "puis", "-", "je", "?"]) == "j'ai faim. puis-je?"
    )


def test_word_detokenize_without_split_punctuation_only_joins_with_spaces():
    assert WordTokenizer().detokenize(["don", "'", "t", "."]) == "don ' t ."


def test_char_tokenizer_makes_spaces_visible():
    assert CharTokenizer().tokenize("ab c") == ["a", "b", "▁", "c"]


def test_char_tokenizer_escapes_other_whitespace_and_the_space_mark():
    assert CharTokenizer().tokenize("a\u00a0▁") == ["a", "<U+00A0>", "<U+2581>"]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_char_tokenizer_round_trip_is_exact_and_tokens_have_no_whitespace(text):
    tokenizer = CharTokenizer()
    tokens = tokenizer.tokenize(text)
    assert tokenizer.detokenize(tokens) == text
    assert all(token and not any(char.isspace() for char in token) for token in tokens)


def test_sentencepiece_round_trips_training_like_text(fitted_spm):
    text = "the dog and the cat sat on the mat ."
    assert fitted_spm.detokenize(fitted_spm.tokenize(text)) == text


def test_sentencepiece_splits_unseen_words_into_pieces(fitted_spm):
    assert len(fitted_spm.tokenize("catdog")) > 1


def test_sentencepiece_fit_is_deterministic(fitted_spm):
    again = SentencePieceTokenizer(vocab_size=40)
    again.fit(CORPUS)
    assert again.model == fitted_spm.model


def test_sentencepiece_fits_a_tiny_corpus_with_a_large_vocab_size():
    tokenizer = SentencePieceTokenizer(vocab_size=8000)
    tokenizer.fit(["hello world", "hello there"])
    assert tokenizer.detokenize(tokenizer.tokenize("hello world")) == "hello world"


def test_sentencepiece_tokenize_before_fit_raises():
    with pytest.raises(RuntimeError, match="before fit"):
        SentencePieceTokenizer().tokenize("hello")


@pytest.mark.parametrize(
    "make",
    [
        lambda: WordTokenizer(lowercase=True, split_punctuation=True),
        CharTokenizer,
        "spm",
    ],
    ids=["word", "char", "sentencepiece"],
)
def test_state_dict_rebuilds_an_equivalent_tokenizer(make, fitted_spm):
    tokenizer: Tokenizer = fitted_spm if make == "spm" else make()
    rebuilt = tokenizer_from_state_dict(tokenizer.state_dict())
    text = "The cat, the dog!"
    assert type(rebuilt) is type(tokenizer)
    assert rebuilt.state_dict() == tokenizer.state_dict()
    assert rebuilt.tokenize(text) == tokenizer.tokenize(text)


def test_unknown_tokenizer_type_raises_checkpoint_error():
    with pytest.raises(CheckpointError, match="unknown tokenizer type 'Bogus'"):
        tokenizer_from_state_dict({"type": "Bogus"})


def test_word_tokenizer_normalize_is_what_tokenize_splits():
    from src.data.tokenizers import WordTokenizer

    tokenizer = WordTokenizer(lowercase=True, split_punctuation=True)
    text = "Je suis Fatigué\u202f!"
    assert tokenizer.normalize(text) == "je suis fatigué !"
    assert tokenizer.tokenize(text) == tokenizer.tokenize(tokenizer.normalize(text))
