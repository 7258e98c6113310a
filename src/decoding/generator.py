"""`SequenceGenerator`: the decoding options of a config, checked once, and the search they select."""

from dataclasses import dataclass

from torch import Tensor

from src.checks import OptionError, is_int, is_number
from src.decoding.beam_search import beam_search
from src.decoding.greedy import greedy_search
from src.decoding.hypothesis import Hypothesis

# the group its options are named by in messages: the decode group of evaluate/translate/visualize
DECODE_GROUP = "decode"


@dataclass(frozen=True)
class SequenceGenerator:
    """Translate batches with greedy search (beam_size=1) or beam search (beam_size > 1; only a beam has
    hypotheses for the length and coverage penalties to rank, so they need beam_size > 1).

    Built from the `decode` config group (`_target_: src.decoding.SequenceGenerator`); every option is
    checked here, so a bad value fails when the config is built, not in the middle of validation.

    beam_size:        hypotheses kept per sentence, >= 1
    n_best:           hypotheses returned per sentence, 1 <= n_best <= beam_size
    length_penalty:   alpha of the GNMT length penalty ((5 + |Y|) / 6) ** alpha, >= 0 (0 = off)
    coverage_penalty: beta of the GNMT coverage penalty, >= 0 (0 = off)
    min_len:          tokens before <eos> is allowed, >= 0
    max_len_a, max_len_b: a sentence produces at most floor(max_len_a * src_len + max_len_b) tokens
    """

    beam_size: int = 1
    n_best: int = 1
    length_penalty: float = 0.0
    coverage_penalty: float = 0.0
    min_len: int = 0
    max_len_a: float = 1.5
    max_len_b: int = 10

    def __post_init__(self) -> None:
        """Check every option; an `OptionError` names them `decode.*` (`in_group` renames the group)."""
        _check(is_int(self.beam_size, 1), "beam_size", self.beam_size, "an integer >= 1")
        if not (is_int(self.n_best) and 1 <= self.n_best <= self.beam_size):
            raise OptionError(
                f"{{group}}.n_best={self.n_best!r} is out of range: it must be an integer between 1 and "
                f"{{group}}.beam_size={self.beam_size}.",
                DECODE_GROUP,
            )
        for name in ("length_penalty", "coverage_penalty"):  # they rank the hypotheses of a beam
            value = getattr(self, name)
            _check(is_number(value) and value >= 0, name, value, "a number >= 0 (0 turns it off)")
            _check(
                value == 0 or self.beam_size > 1,
                name,
                value,
                f"0 with {{group}}.beam_size=1 (greedy search has one hypothesis to rank); set {{group}}.beam_size "
                f"above 1 to use {{group}}.{name}",
            )
        _check(is_int(self.min_len, 0), "min_len", self.min_len, "an integer >= 0")
        _check(
            is_number(self.max_len_a) and self.max_len_a >= 0, "max_len_a", self.max_len_a, "a number >= 0"
        )
        lowest_b = 1 if self.max_len_a == 0 else 0
        _check(
            is_int(self.max_len_b, lowest_b),
            "max_len_b",
            self.max_len_b,
            "an integer >= 1 when {group}.max_len_a=0" if lowest_b else "an integer >= 0",
        )

    def __call__(self, model, src: Tensor, src_len: Tensor) -> list[list[Hypothesis]]:
        """n-best hypotheses per sentence, best first. src [batch, src_len] long, src_len [batch] long."""
        if self.beam_size == 1:
            return greedy_search(model, src, src_len, self.max_len_a, self.max_len_b, self.min_len)
        return beam_search(
            model,
            src,
            src_len,
            self.beam_size,
            n_best=self.n_best,
            length_penalty=self.length_penalty,
            coverage_penalty=self.coverage_penalty,
            min_len=self.min_len,
            max_len_a=self.max_len_a,
            max_len_b=self.max_len_b,
        )


def _check(valid: bool, option: str, value: object, expected: str) -> None:
    if not valid:
        raise OptionError(f"{{group}}.{option}={value!r} is invalid: it must be {expected}.", DECODE_GROUP)
