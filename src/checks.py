"""The value checks of every constructor that takes options from a config, so that every option is judged
alike and each is checked in one place: the constructor of what it configures.

A constructor names its options the way the user writes them (`encoder.hidden_size`, `data.batch_size`).
An object that serves under several names (the search options are `decode.*` for `evaluate`/`translate` and
`model.val_generator.*` for training) raises `OptionError`, whose message names its group as a field, and
whoever built it from a config names the group (`OptionError.in_group`), instead of patching the message.
"""

from typing import Any

from src.errors import ConfigError


def is_int(value: Any, minimum: int | None = None) -> bool:
    """An integer (a bool is not one, though Python says so), at least `minimum` when given. A number typed
    on the command line that is not one arrives as a string, and fails here."""
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


def is_number(value: Any) -> bool:
    """An int or a float (not a bool, not a string that looks like a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def require(valid: bool, option: str, value: Any, expected: str) -> None:
    """Raise `ConfigError("<option>=<value> is invalid: it must be <expected>.")` unless `valid`."""
    if not valid:
        raise ConfigError(f"{option}={value!r} is invalid: it must be {expected}.")


def require_int(option: str, value: Any, minimum: int = 1) -> None:
    require(is_int(value, minimum), option, value, f"an integer >= {minimum}")


def require_fraction(option: str, value: Any) -> None:
    """A rate such as dropout or label smoothing: [0, 1)."""
    require(is_number(value) and 0 <= value < 1, option, value, "a number in [0, 1)")


def require_probability(option: str, value: Any) -> None:
    """A probability: [0, 1]."""
    require(is_number(value) and 0 <= value <= 1, option, value, "a probability in [0, 1]")


def require_number(option: str, value: Any, minimum: float = 0.0, *, above: bool = False) -> None:
    """A number >= minimum (> minimum with `above`)."""
    valid = is_number(value) and (value > minimum if above else value >= minimum)
    require(valid, option, value, f"a number {'>' if above else '>='} {minimum:g}")


def require_sizes(group: str, **sizes: Any) -> None:
    """Each size of a network module (hidden_size, num_layers, ...) is an integer >= 1: `<group>.<name>`."""
    for name, value in sizes.items():
        require_int(f"{group}.{name}", value)


def require_divides(group: str, divisor: str, divisor_value: int, size: str, size_value: int) -> None:
    """`<group>.<divisor>` heads split `<group>.<size>` into equal parts."""
    if size_value % divisor_value != 0:
        raise ConfigError(
            f"{group}.{divisor}={divisor_value} must divide {group}.{size}={size_value}; change one of them."
        )


class OptionError(ConfigError):
    """A bad option of an object that serves under several config groups. `template` names the group as
    `{group}` (e.g. "{group}.n_best=3 ... {group}.beam_size=1"); `in_group` names it anew. The empty group
    is the top level of a command's config (`batch_size` of the inference group)."""

    def __init__(self, template: str, group: str) -> None:
        super().__init__(template.replace("{group}.", f"{group}." if group else ""))
        self.template = template

    def in_group(self, group: str) -> "OptionError":
        return OptionError(self.template, group)
