"""Vocabulary: token string <-> id, with the special tokens at fixed ids.

Saved as one token per line (UTF-8) in id order, so the file is readable and diffable.
"""

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from src.errors import DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIALS = [PAD, UNK, BOS, EOS]


class Vocabulary:
    """The special tokens (ids 0..3) followed by `tokens` in the given order."""

    def __init__(self, tokens: list[str]) -> None:
        for token in tokens:
            _check_token(token)
        self._tokens = SPECIALS + list(tokens)
        self._ids = {token: i for i, token in enumerate(self._tokens)}
        if len(self._ids) != len(self._tokens):
            raise ValueError("vocabulary tokens must be unique and must not repeat a special token")

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> "Vocabulary":
        """Tokens seen at least `min_freq` times, the `max_size` most frequent (specials not counted).

        Order: frequency descending, then token ascending, so the result does not depend on the order
        of the input.
        """
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = [(token, n) for token, n in counts.items() if n >= min_freq and token not in SPECIALS]
        kept.sort(key=lambda item: (-item[1], item[0]))
        return cls([token for token, _ in kept[:max_size]])

    def __len__(self) -> int:
        return len(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def encode(self, tokens: list[str]) -> list[int]:
        """Token strings -> ids; unknown tokens -> UNK_ID."""
        return [self._ids.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> token strings, stopping at the first EOS and dropping PAD and BOS."""
        tokens = []
        for i in map(int, ids):
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                tokens.append(self._tokens[i])
        return tokens

    def lookup(self, ids: Iterable[int]) -> list[str]:
        """Ids -> token strings, one for one (specials included, no stopping)."""
        return [self._tokens[int(i)] for i in ids]

    def to_list(self) -> list[str]:
        """All tokens in id order, specials first (plain data for checkpoints)."""
        return list(self._tokens)

    @classmethod
    def from_list(cls, tokens: list[str]) -> "Vocabulary":
        """Inverse of `to_list`."""
        if list(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary list must start with {SPECIALS}, got {list(tokens[:4])}")
        return cls(list(tokens[len(SPECIALS) :]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(token + "\n" for token in self._tokens), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        try:
            # split("\n"), not splitlines(): the latter also breaks on U+2028, U+0085 ...
            tokens = path.read_text(encoding="utf-8").split("\n")[:-1]
            return cls.from_list(tokens)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"{path}: not a readable vocabulary file ({err}).") from None


def _check_token(token: str) -> None:
    if not token or any(char.isspace() for char in token):
        raise ValueError(f"vocabulary token {token!r} is empty or contains whitespace")
