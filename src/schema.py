"""Check a composed training config before any data is read, so that a bad option costs seconds, not a run.

`validate_train_config(cfg)` raises a `ConfigError` that names the option, its value and what it must be.
Three steps:

1. `RULES`: type and range of the common numeric options. A value typed on the command line that is not
   a number arrives as a string (`model.optimizer.lr=abc`), so types are checked, not only ranges.
2. What the hardware cannot compute (`trainer.precision=bf16-mixed` on a CPU without bf16: `src.hardware`),
   and options that only fail together: position tables shorter than `data.max_len`, a learning-rate monitor
   without a logger.
3. A dry build of the network (on the meta device: no memory, no time), the optimizer, the LR scheduler,
   teacher forcing and the validation search. Their constructors already check what only they can
   (heads dividing sizes, encoder/attention/decoder pairings, ...); building them here makes those
   checks fire now instead of after the corpus is read.

The data group is checked by `TranslationDataModule` itself, whose constructor runs before any file is
read; only the types its checks would trip over are checked here.
"""

from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.checks import is_int
from src.entry import user_error_cause
from src.errors import ConfigError
from src.hardware import check_precision
from src.lightning_compat import precision_choices
from src.lit_module import NONFINITE_LOSS_CHOICES

_ABSENT = object()
# a vocabulary of the special tokens and a few words: enough to build any network
_DRY_VOCAB_SIZE = 8


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda value: is_int(value) and value >= minimum


def _number_in(low: float, high: float, *, high_inclusive: bool = False) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return _is_number(value) and low <= value and (value <= high if high_inclusive else value < high)

    return check


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _one_of(choices: tuple) -> Callable[[Any], bool]:
    return lambda value: value in choices


_POSITIVE_INT = (_int_at_least(1), "an integer >= 1")
_PROBABILITY = (_number_in(0, 1), "a number in [0, 1)")
_NON_NEGATIVE = (_number_in(0, float("inf")), "a number >= 0")
_POSITIVE = (lambda value: _is_number(value) and value > 0, "a number > 0")
_PRECISIONS = precision_choices()

_MODULE_GROUPS = ("encoder", "attention", "decoder")
_SIZE_KEYS = ("hidden_size", "num_layers", "d_model", "num_heads", "d_ff", "kernel_size", "max_positions")

# option -> (check, what it must be); options absent from the composed config are not checked
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{f"{group}.{key}": _POSITIVE_INT for group in _MODULE_GROUPS for key in _SIZE_KEYS},
    **{f"{group}.dropout": _PROBABILITY for group in _MODULE_GROUPS},
    "model.net.embedding_size": _POSITIVE_INT,
    "model.net.embedding_dropout": _PROBABILITY,
    "model.net.init_range": _POSITIVE,
    "model.optimizer.lr": _POSITIVE,
    "model.optimizer.weight_decay": _NON_NEGATIVE,
    "model.label_smoothing": _PROBABILITY,
    "model.coverage_loss_weight": _NON_NEGATIVE,
    "model.attention_entropy_weight": _NON_NEGATIVE,
    "model.alignment_loss_weight": _NON_NEGATIVE,
    "model.alignment_head": (_int_at_least(0), "an integer >= 0"),
    "model.nonfinite_loss": (_one_of(NONFINITE_LOSS_CHOICES), f"one of {', '.join(NONFINITE_LOSS_CHOICES)}"),
    "model.teacher_forcing.start": (_number_in(0, 1, high_inclusive=True), "a probability in [0, 1]"),
    "model.teacher_forcing.end": (_number_in(0, 1, high_inclusive=True), "a probability in [0, 1]"),
    "model.teacher_forcing.decay_steps": _POSITIVE_INT,
    "model.val_generator.beam_size": _POSITIVE_INT,
    "model.val_generator.n_best": _POSITIVE_INT,
    "model.val_generator.length_penalty": _NON_NEGATIVE,
    "model.val_generator.coverage_penalty": _NON_NEGATIVE,
    "model.val_generator.min_len": (_int_at_least(0), "an integer >= 0"),
    "model.val_generator.max_len_a": _NON_NEGATIVE,
    "model.val_generator.max_len_b": (_int_at_least(0), "an integer >= 0"),
    "data.valid_ratio": _PROBABILITY,
    "data.test_ratio": _PROBABILITY,
    "trainer.max_epochs": (_or_null(_int_at_least(-1)), "an integer >= 1, -1 (no limit) or null"),
    "trainer.min_epochs": (_or_null(_int_at_least(0)), "an integer >= 0 or null"),
    "trainer.max_steps": (_int_at_least(-1), "an integer >= 1 or -1 (no limit)"),
    "trainer.accumulate_grad_batches": _POSITIVE_INT,
    "trainer.gradient_clip_val": (_or_null(_NON_NEGATIVE[0]), "a number >= 0 or null"),
    "trainer.log_every_n_steps": _POSITIVE_INT,
    "trainer.check_val_every_n_epoch": (_or_null(_int_at_least(1)), "an integer >= 1 or null"),
    "trainer.precision": (lambda value: str(value) in _PRECISIONS, f"one of {', '.join(_PRECISIONS)}"),
    "seed": (_int_at_least(0), "an integer >= 0"),
}


def validate_train_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` for the first invalid option of a training config; build nothing that lasts."""
    check_rules(cfg)
    check_precision(str(cfg.trainer.precision), str(cfg.trainer.get("accelerator", "auto")))
    check_positions(cfg)
    check_guided_alignment(cfg)
    check_logger_for_callbacks(cfg)
    dry_build(cfg)


def check_rules(cfg: DictConfig) -> None:
    for option, (check, expected) in RULES.items():
        value = OmegaConf.select(cfg, option, default=_ABSENT)
        if value is not _ABSENT and not check(value):
            raise ConfigError(f"{option}={value!r} is invalid: it must be {expected}.")


def check_guided_alignment(cfg: DictConfig) -> None:
    """model.alignment_loss_weight needs the training pairs' links (data.alignments_path)."""
    weight = OmegaConf.select(cfg, "model.alignment_loss_weight", default=0)
    if weight and not OmegaConf.select(cfg, "data.alignments_path", default=None):
        raise ConfigError(
            f"model.alignment_loss_weight={weight} supervises the attention with word links of the training "
            "pairs, but data.alignments_path is not set: give a file of Pharaoh links, one line per training "
            "pair (e.g. written by an aligner), or set model.alignment_loss_weight=0."
        )


def check_positions(cfg: DictConfig) -> None:
    """Position tables must hold the longest training sentence (data.max_len tokens, plus <bos>)."""
    max_len = OmegaConf.select(cfg, "data.max_len", default=None)
    if not is_int(max_len):
        return
    for group in ("encoder", "decoder"):
        max_positions = OmegaConf.select(cfg, f"{group}.max_positions", default=None)
        if is_int(max_positions) and max_positions < max_len + 1:
            raise ConfigError(
                f"{group}.max_positions={max_positions} is too small for data.max_len={max_len} "
                f"(sentences of up to {max_len} tokens plus <bos>); raise {group}.max_positions to at "
                f"least {max_len + 1} or lower data.max_len."
            )


def check_logger_for_callbacks(cfg: DictConfig) -> None:
    """Lightning's LearningRateMonitor refuses to start without a logger; say so before the data is read."""
    loggers = [node for node in (cfg.get("logger") or {}).values() if node is not None]
    for name, node in (cfg.get("callbacks") or {}).items():
        target = str(node.get("_target_", "")) if node is not None else ""
        if target.endswith(".LearningRateMonitor") and not loggers:
            raise ConfigError(
                f"callbacks.{name} (LearningRateMonitor) needs a logger, but there is none (~logger?); "
                f"keep logger=tensorboard or switch the callback off with ~callbacks.{name}."
            )


def dry_build(cfg: DictConfig) -> None:
    """Build what the model group describes, so that every constructor check runs before the data is read."""
    model = cfg.model
    with torch.device("meta"):
        _build("model.net", model.net, src_vocab_size=_DRY_VOCAB_SIZE, tgt_vocab_size=_DRY_VOCAB_SIZE)
    optimizer = _build("model.optimizer", model.optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    if model.get("scheduler") is not None:
        _build("model.scheduler", model.scheduler, optimizer=optimizer)
    for option in ("teacher_forcing", "val_generator"):
        if model.get(option) is not None:
            _build(f"model.{option}", model[option])


def _build(option: str, node: DictConfig, **completion: Any) -> Any:
    """instantiate(node), then call it with `completion` when it is a partial; errors become ConfigError."""
    try:
        built = instantiate(node)
        return built(**completion) if completion else built
    except Exception as err:  # whatever a constructor rejects, the config is what to fix
        cause = user_error_cause(err)
        if cause is not None:
            message = str(cause)
            if option == "model.val_generator":  # SequenceGenerator names its options decode.*, as in
                message = message.replace("decode.", f"{option}.")  # the decode group of evaluate/translate
            raise ConfigError(message) from None
        raise ConfigError(
            f"{option} cannot be built from its config: {_innermost(err)}. Check its keys and values "
            "(`python -m src.train --cfg job` prints the composed config)."
        ) from None


def _innermost(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}"
