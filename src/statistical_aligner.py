"""A classical statistical word aligner beside the attention: eflomal (Östling & Tiedemann 2016, "Efficient
word alignment with Markov Chain Monte Carlo"; a Bayesian IBM model with HMM alignment and fertility),
the baseline attention-based alignments are compared with.

As such aligners are used, it is trained, unsupervised, on a parallel corpus (the model's own training
corpus) together with the pairs to align, in both directions; the two directions are symmetrised
(grow-diag-final by default) and the links of the pairs are returned on the pairs' words. Everything is
lowercased and its punctuation split off (`\\w+|[^\\w\\s]`), so that `go.` and `go` are one word to the aligner
and untokenised text (Tatoeba's `I'm home.`) aligns as well as tokenised gold sets; a link between two parts
is a link between the pair's words they come from.

eflomal is an optional dependency: `pip install -e ".[align]"`.
"""

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from src.alignment import Link, Pair, read_pharaoh, symmetrize
from src.errors import ConfigError

_WORDS = re.compile(r"\w+|[^\w\s]")


def corpus_words(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def eflomal_links(
    pairs: Sequence[Pair], corpus: Sequence[tuple[str, str]] = (), how: str = "grow-diag-final"
) -> list[set[Link]]:
    """The symmetrised eflomal links of each pair (source word, target word), trained on pairs + corpus."""
    try:
        import eflomal
    except ImportError:
        raise ConfigError(
            'baseline=eflomal and aligner=eflomal need the eflomal package: pip install -e ".[align]" (or pip install eflomal).'
        ) from None
    src_parts = [_word_parts(words) for words, _ in pairs]
    tgt_parts = [_word_parts(words) for _, words in pairs]
    src = [" ".join(parts) for parts, _ in src_parts] + [corpus_words(s) for s, _ in corpus]
    tgt = [" ".join(parts) for parts, _ in tgt_parts] + [corpus_words(t) for _, t in corpus]
    # the pairs first (their links are the first lines); corpus lines without words on a side are left out
    kept = list(zip(src[: len(pairs)], tgt[: len(pairs)], strict=True))
    kept += [(s, t) for s, t in zip(src[len(pairs) :], tgt[len(pairs) :], strict=True) if s and t]
    with tempfile.TemporaryDirectory() as directory:
        forward, reverse = Path(directory) / "forward.txt", Path(directory) / "reverse.txt"
        eflomal.Aligner().align(
            [s + "\n" for s, _ in kept],
            [t + "\n" for _, t in kept],
            links_filename_fwd=str(forward),
            links_filename_rev=str(reverse),
            quiet=True,
        )
        fwd = read_pharaoh(forward, option="eflomal's forward links")[: len(pairs)]
        rev = read_pharaoh(reverse, option="eflomal's reverse links")[: len(pairs)]
    return [
        {(src_of[i], tgt_of[j]) for i, j in symmetrize(f, r, how)}
        for f, r, (_, src_of), (_, tgt_of) in zip(fwd, rev, src_parts, tgt_parts, strict=True)
    ]


def _word_parts(words: Sequence[str]) -> tuple[list[str], list[int]]:
    """A pair side's words cut into the aligner's parts (as `corpus_words` cuts), and the word each part
    comes from: `["I'm", "home."]` -> `(["i", "'", "m", "home", "."], [0, 0, 0, 1, 1])`."""
    parts, word_of = [], []
    for index, word in enumerate(words):
        for part in _WORDS.findall(word.lower()):
            parts.append(part)
            word_of.append(index)
    return parts, word_of
