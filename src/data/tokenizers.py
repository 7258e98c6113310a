"""Tokenizers: text <-> token strings, with a state that is plain data (for weights-only checkpoints).

* `WordTokenizer`: whitespace words, optionally lowercased and with punctuation split off.
* `CharTokenizer`: characters; exact round trip.
* `SentencePieceTokenizer`: subwords learnt by SentencePiece (unigram or BPE) on the training text.

No tokenizer produces an empty token or a token containing whitespace, so a vocabulary can be saved
one token per line.
"""

import io
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import sentencepiece as spm

from src.errors import CheckpointError

# Tatoeba's French side puts these no-break spaces before punctuation.
_NO_BREAK_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


class Tokenizer:
    """Base class. Subclasses register themselves by class name for `tokenizer_from_state_dict`."""

    registry: ClassVar[dict[str, type["Tokenizer"]]] = {}
    # whether `normalize` lowercases: scores against references must then be case-insensitive
    lowercase: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Tokenizer.registry[cls.__name__] = cls

    def fit(self, texts: Iterable[str]) -> None:
        """Learn from the training texts; most tokenizers have nothing to learn."""

    def normalize(self, text: str) -> str:
        """The text-level normalisation `tokenize` applies before splitting (none by default).

        References are normalised the same way before scoring, so that BLEU compares like with like
        (e.g. a lowercasing tokenizer is not penalised for case).
        """
        return text

    def tokenize(self, text: str) -> list[str]:
        raise NotImplementedError

    def detokenize(self, tokens: list[str]) -> str:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Constructor arguments (and learnt state) as plain data, with the class name under "type"."""
        return {"type": type(self).__name__}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Tokenizer":
        return cls(**{key: value for key, value in state.items() if key != "type"})


def tokenizer_from_state_dict(state: dict[str, Any]) -> Tokenizer:
    """Rebuild whichever tokenizer `state` describes (dispatch on `state["type"]`)."""
    kind = state.get("type")
    if kind not in Tokenizer.registry:
        raise CheckpointError(
            f"unknown tokenizer type {kind!r} in saved state; known: {sorted(Tokenizer.registry)}. "
            "The checkpoint was written by an incompatible version of the code."
        )
    return Tokenizer.registry[kind].from_state_dict(state)


class WordTokenizer(Tokenizer):
    """Words split on whitespace; with `split_punctuation`, every non-word character is its own token.

    `detokenize` exists only to produce text for sacrebleu (which re-tokenizes anyway), so it is a
    simple heuristic, not an inverse: with `split_punctuation` it removes the space before closing
    punctuation (`. , ! ? ; : ) ] } % »` ...) and after opening punctuation (`( [ { « ¿ ¡`), and
    rejoins apostrophes and hyphens between two words ("j ' ai" -> "j'ai", "don ' t" -> "don't",
    "puis - je" -> "puis-je"). French spacing before `! ? : ;` is not restored.
    """

    _WORD_OR_PUNCT = re.compile(r"\w+|[^\w\s]")
    _CLOSING = re.compile(r" ([.,!?;:%)\]}»…])")
    _OPENING = re.compile(r"([(\[{«¿¡]) ")
    _INFIX = re.compile(r"(?<=\w) (['’-]) (?=\w)")

    def __init__(self, lowercase: bool = False, split_punctuation: bool = False) -> None:
        self.lowercase = lowercase
        self.split_punctuation = split_punctuation

    def normalize(self, text: str) -> str:
        text = text.translate(_NO_BREAK_SPACES)
        return text.lower() if self.lowercase else text

    def tokenize(self, text: str) -> list[str]:
        text = self.normalize(text)
        if self.split_punctuation:
            return self._WORD_OR_PUNCT.findall(text)
        return text.split()

    def detokenize(self, tokens: list[str]) -> str:
        text = " ".join(tokens)
        if not self.split_punctuation:
            return text
        text = self._CLOSING.sub(r"\1", text)
        text = self._OPENING.sub(r"\1", text)
        return self._INFIX.sub(r"\1", text)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "lowercase": self.lowercase,
            "split_punctuation": self.split_punctuation,
        }


class CharTokenizer(Tokenizer):
    """One token per character; a space becomes the visible token "▁".

    Characters that would be invisible or ambiguous in a one-token-per-line vocabulary file (any
    whitespace other than the plain space, and "▁" itself) become escape tokens like "<U+00A0>", so
    `detokenize(tokenize(text)) == text` for every text.
    """

    SPACE = "▁"
    _ESCAPE = re.compile(r"<U\+([0-9A-F]{4,6})>")

    def tokenize(self, text: str) -> list[str]:
        return [self._token(char) for char in text]

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(self._char(token) for token in tokens)

    def _token(self, char: str) -> str:
        if char == " ":
            return self.SPACE
        if char.isspace() or char == self.SPACE:
            return f"<U+{ord(char):04X}>"
        return char

    def _char(self, token: str) -> str:
        if token == self.SPACE:
            return " "
        escape = self._ESCAPE.fullmatch(token)
        return chr(int(escape.group(1), 16)) if escape else token


class SentencePieceTokenizer(Tokenizer):
    """Subword pieces from a SentencePiece model trained in memory by `fit` (Kudo & Richardson, 2018).

    Training is single-threaded so that the same text always gives the same model. The vocabulary
    limit is soft (`hard_vocab_limit=False`), so a tiny corpus yields fewer pieces instead of failing.
    SentencePiece's own <unk> is kept; our `Vocabulary` adds the other special tokens.
    """

    def __init__(
        self,
        vocab_size: int = 8000,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        model: bytes | None = None,
    ) -> None:
        self.vocab_size = vocab_size
        self.model_type = model_type
        self.character_coverage = character_coverage
        self.model = model
        self._processor = self._load(model) if model is not None else None

    def fit(self, texts: Iterable[str]) -> None:
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=writer,
            vocab_size=self.vocab_size,
            model_type=self.model_type,
            character_coverage=self.character_coverage,
            hard_vocab_limit=False,
            bos_id=-1,
            eos_id=-1,
            num_threads=1,
            minloglevel=2,
        )
        self.model = writer.getvalue()
        self._processor = self._load(self.model)

    def tokenize(self, text: str) -> list[str]:
        return self._fitted().encode(text, out_type=str)

    def detokenize(self, tokens: list[str]) -> str:
        return self._fitted().decode_pieces(tokens)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "vocab_size": self.vocab_size,
            "model_type": self.model_type,
            "character_coverage": self.character_coverage,
            "model": self.model,
        }

    def _fitted(self) -> spm.SentencePieceProcessor:
        if self._processor is None:
            raise RuntimeError("SentencePieceTokenizer used before fit(): fit it on the training text first.")
        return self._processor

    @staticmethod
    def _load(model: bytes) -> spm.SentencePieceProcessor:
        return spm.SentencePieceProcessor(model_proto=model)


def tokenize_words(tokenizer: Tokenizer, words: Sequence[str]) -> tuple[list[str], list[int | None]]:
    """The model's tokens for a sentence of `words`, and per token the index of the word it comes from.

    Each word is tokenized alone and the tokens are concatenated, so no token spans two words: the model
    reads what it would read for `" ".join(words)` (for SentencePiece, which splits at whitespace first, the
    same pieces; lowercasing and punctuation splitting as the tokenizer does them). A CharTokenizer also
    reads the space between two words, as a token of no word (None).
    """
    tokens: list[str] = []
    owners: list[int | None] = []
    for index, word in enumerate(words):
        if index > 0 and isinstance(tokenizer, CharTokenizer):
            tokens.append(CharTokenizer.SPACE)
            owners.append(None)
        pieces = tokenizer.tokenize(word)
        tokens += pieces
        owners += [index] * len(pieces)
    return tokens, owners
