"""Codec: the tokenizer and vocabulary of each side, turning text into ids and ids back into text."""

from pathlib import Path
from typing import Any

from src.data.tokenizers import SentencePieceTokenizer, Tokenizer, tokenizer_from_state_dict
from src.data.vocab import Vocabulary


class Codec:
    """Text <-> ids for source and target. Ids carry no BOS/EOS; the collate function adds them.

    When `src_vocab is tgt_vocab` the vocabulary is shared (one embedding table can serve both sides).
    """

    def __init__(
        self, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer, src_vocab: Vocabulary, tgt_vocab: Vocabulary
    ) -> None:
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab

    @property
    def shared_vocab(self) -> bool:
        return self.src_vocab is self.tgt_vocab

    def encode_src(self, text: str) -> list[int]:
        return self.src_vocab.encode(self.src_tokenizer.tokenize(text))

    def encode_tgt(self, text: str) -> list[int]:
        return self.tgt_vocab.encode(self.tgt_tokenizer.tokenize(text))

    def src_tokens(self, text: str) -> list[str]:
        """The source tokens as the model sees them (out-of-vocabulary ones as <unk>), e.g. for plots."""
        return self.src_vocab.lookup(self.encode_src(text))

    def tgt_tokens(self, ids: list[int]) -> list[str]:
        """Target ids -> tokens, stopping at EOS and dropping PAD/BOS."""
        return self.tgt_vocab.decode(ids)

    def decode_tgt(self, ids: list[int]) -> str:
        """Target ids -> detokenized text."""
        return self.tgt_tokenizer.detokenize(self.tgt_tokens(ids))

    def state_dict(self) -> dict[str, Any]:
        """Plain data only (dicts, lists, str, int, float, bool, bytes): safe for weights-only loading."""
        return {
            "src_tokenizer": self.src_tokenizer.state_dict(),
            "tgt_tokenizer": self.tgt_tokenizer.state_dict(),
            "src_vocab": self.src_vocab.to_list(),
            "tgt_vocab": None if self.shared_vocab else self.tgt_vocab.to_list(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Codec":
        src_vocab = Vocabulary.from_list(state["src_vocab"])
        tgt_vocab = src_vocab if state["tgt_vocab"] is None else Vocabulary.from_list(state["tgt_vocab"])
        return cls(
            tokenizer_from_state_dict(state["src_tokenizer"]),
            tokenizer_from_state_dict(state["tgt_tokenizer"]),
            src_vocab,
            tgt_vocab,
        )

    def save(self, directory: str | Path) -> None:
        """Write the vocabularies (`vocab.txt` when shared, else `src_vocab.txt`, `tgt_vocab.txt`) and
        the SentencePiece models (`src_spm.model`, `tgt_spm.model`) when used, for inspection."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.shared_vocab:
            self.src_vocab.save(directory / "vocab.txt")
        else:
            self.src_vocab.save(directory / "src_vocab.txt")
            self.tgt_vocab.save(directory / "tgt_vocab.txt")
        for side, tokenizer in (("src", self.src_tokenizer), ("tgt", self.tgt_tokenizer)):
            if isinstance(tokenizer, SentencePieceTokenizer) and tokenizer.model is not None:
                (directory / f"{side}_spm.model").write_bytes(tokenizer.model)
