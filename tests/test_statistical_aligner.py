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


def test_eflomal_aligns_words_with_attached_punctuation_by_their_parts():
    """`Go.` and `Va !`: the aligner sees `go .` and `va !`; go-va is a link between the pair's words 0 and 0,
    and no link leaves the pair's words."""
    pytest.importorskip("eflomal")
    words = [("go", "va"), ("run", "cours"), ("stop", "arrête"), ("wait", "attends"), ("come", "viens")]
    corpus = [(f"{a} {b}.", f"{x} {y} !") for a, x in words for b, y in words] * 4
    (links,) = eflomal_links([(["Go", "run."], ["Va", "cours", "!"])], corpus)
    assert {(0, 0), (1, 1)} <= links
    assert all(i < 2 and j < 3 for i, j in links)


def test_a_missing_eflomal_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_eflomal(name, *args, **kwargs):
        if name == "eflomal":
            raise ImportError("No module named 'eflomal'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_eflomal)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[align\]"'):
        eflomal_links([(["a"], ["b"])])
