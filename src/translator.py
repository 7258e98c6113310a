"""Raw text in, translations out: tokenise, batch by length, search, detokenise.

Shared by validation, the callbacks and the command-line tools, so all of them translate the same way.
"""

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from src.checks import OptionError, is_int
from src.data.batch import collate_sources
from src.data.codec import Codec
from src.data.vocab import EOS
from src.decoding import Hypothesis, SequenceGenerator
from src.decoding.shortlist import Shortlist

log = logging.getLogger(__name__)

EMPTY = Hypothesis(tokens=[], score=0.0, log_prob=0.0, attention=None)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """The indices of the non-empty inputs, shortest first, in batches of `batch_size`: inputs of similar
    length share a batch, so little of a batch is padding."""
    order = sorted((i for i, length in enumerate(lengths) if length), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class Translator:
    """Translate sentences with `net`, in batches of similar length, returning results in input order."""

    def __init__(
        self,
        net: nn.Module,
        codec: Codec,
        generator: SequenceGenerator,
        batch_size: int = 64,
        max_src_len: int | None = 200,
        shortlist: Shortlist | None = None,
    ):
        """`shortlist`: restrict the output layer, per batch, to the target tokens the batch's source
        tokens co-occur with in the training data (`src.decoding.shortlist`); None: the whole vocabulary."""
        self.check_options(batch_size, max_src_len)
        self.net, self.codec, self.generator = net, codec, generator
        self.batch_size, self.max_src_len = batch_size, max_src_len
        self.shortlist = shortlist

    @staticmethod
    def check_options(batch_size: Any, max_src_len: Any) -> None:
        """Raise an `OptionError` naming the options as the inference group does (`batch_size`); training
        names them `model.translator.*` (`OptionError.in_group`)."""
        if not is_int(batch_size, 1):
            raise OptionError(
                f"{{group}}.batch_size={batch_size!r} is invalid: it must be an integer >= 1.", ""
            )
        if max_src_len is not None and not is_int(max_src_len, 1):
            raise OptionError(
                f"{{group}}.max_src_len={max_src_len!r} is invalid: it must be an integer >= 1, or null for no "
                "limit.",
                "",
            )

    def encode(self, text: str) -> list[int]:
        """Source ids; an over-long sentence is truncated to `max_src_len` tokens with a warning."""
        ids = self.codec.encode_src(text)
        if self.max_src_len is not None and len(ids) > self.max_src_len:
            log.warning(
                "Truncated a source of %d tokens to max_src_len=%d: %.60s...",
                len(ids),
                self.max_src_len,
                text,
            )
            ids = ids[: self.max_src_len]
        return ids

    def translate(self, texts: Sequence[str]) -> list[list[Hypothesis]]:
        """n-best hypotheses (best first) per input sentence; an empty sentence gives an empty translation."""
        ids = [self.encode(text) for text in texts]
        results: list[list[Hypothesis]] = [[EMPTY] for _ in texts]
        device = next(self.net.parameters()).device
        was_training = self.net.training
        self.net.eval()
        try:
            for chunk in length_sorted_batches([len(i) for i in ids], self.batch_size):
                src, src_len = collate_sources([ids[i] for i in chunk])
                src, src_len = src.to(device), src_len.to(device)
                if self.shortlist is None:
                    nbest = self.generator(self.net, src, src_len)
                else:
                    model = self.shortlist.restrict(self.net, src)
                    nbest = model.full_ids(self.generator(model, src, src_len))
                for i, hyps in zip(chunk, nbest, strict=True):
                    results[i] = hyps
        finally:
            self.net.train(was_training)
        return results

    def to_text(self, hypothesis: Hypothesis) -> str:
        return self.codec.decode_tgt(hypothesis.tokens)

    def translate_text(self, texts: Sequence[str]) -> list[str]:
        """The best translation of each sentence, as detokenized text."""
        return [self.to_text(nbest[0]) for nbest in self.translate(texts)]

    def attention_labels(self, text: str, hypothesis: Hypothesis) -> tuple[list[str], list[str]]:
        """The labels of `hypothesis.attention` [heads, tgt_len, src_len] for a translation of `text`.

        Columns: the source tokens the model saw (unknown words as <unk>, cut at `max_src_len`);
        rows: the output tokens, then <eos>.
        """
        src_tokens = self.codec.src_tokens(text)[: self.max_src_len]
        return src_tokens, self.codec.tgt_vocab.lookup(hypothesis.tokens) + [EOS]


def bleu_hypothesis(codec: Codec, tokens: list[int], bleu_tokenize: str) -> str:
    """A hypothesis as sacrebleu scores it: detokenized text, or the model's own tokens joined by spaces
    when `bleu_tokenize` is `none` (sacrebleu then splits on spaces only)."""
    if bleu_tokenize == "none":
        return " ".join(codec.tgt_tokens(tokens))
    return codec.decode_tgt(tokens)


def bleu_reference(codec: Codec, reference: str, bleu_tokenize: str) -> str:
    """A reference as sacrebleu scores it: normalised like the training targets (e.g. lowercased), and
    tokenized like them when `bleu_tokenize` is `none`."""
    if bleu_tokenize == "none":
        return " ".join(codec.tgt_tokenizer.tokenize(reference))
    return codec.tgt_tokenizer.normalize(reference)
