"""The eflomal baseline beside the attention: trained on a corpus plus the pairs, links on the pairs' words."""

import builtins

import pytest

from src.errors import ConfigError
from src.statistical_aligner import corpus_words, eflomal_links

CORPUS = [("the cat sleeps", "le chat dort"), ("the dog sleeps", "le chien dort"), ("a cat", "un chat"),
          ("a dog", "un chien"), ("the cat eats", "le chat mange"), ("a dog eats", "un chien mange")] * 20  # fmt: skip


def test_corpus_text_is_lowercased_with_punctuation_split():
    assert corpus_words("The cat, asleep.") == "the cat , asleep ."


def test_eflomal_aligns_a_small_parallel_corpus_word_for_word():
    pytest.importorskip("eflomal")
    pairs = [(["The", "dog", "sleeps"], ["le", "chien", "dort"]), (["a", "cat"], ["un", "chat"])]
    links = eflomal_links(pairs, CORPUS)
    assert links == [{(0, 0), (1, 1), (2, 2)}, {(0, 0), (1, 1)}]


def test_a_missing_eflomal_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_eflomal(name, *args, **kwargs):
        if name == "eflomal":
            raise ImportError("No module named 'eflomal'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_eflomal)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[align\]"'):
        eflomal_links([(["a"], ["b"])])
