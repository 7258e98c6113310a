"""Check a composed training config before any data is read, so that a bad option costs seconds, not a run.

`validate_train_config(cfg)` raises a `ConfigError` that names the option, its value and what it must be.
Each of our classes checks its own options in its constructor (`src.checks`), so this module mostly builds
them, dry, in the order a run does:

1. `RULES`: the options of what we do not construct ourselves, whose own errors would not name the option:
   the optimizer's (torch.optim), the trainer's (Lightning) and the global seed. A value typed on the command
   line that is not a number arrives as a string (`model.optimizer.lr=abc`), so types are checked too.
2. What the hardware cannot compute (`trainer.precision=bf16-mixed` on a CPU without bf16: `src.hardware`),
   and options that only fail together: position tables shorter than `data.max_len`, guided alignment
   without alignments, a learning-rate monitor without a logger.
3. A dry build of the data module (its constructor reads no file), the network and the whole LightningModule
   (on the meta device, with a vocabulary of a few tokens: no memory, no time), the optimizer, the LR
   scheduler, teacher forcing, the validation search and the watched sentences' translator. Their
   constructors raise what only they can check (sizes, heads dividing sizes, encoder/attention/decoder
   pairings, ...), now instead of after the corpus is read.
"""

from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.checks import OptionError, is_int, is_number
from src.data.codec import Codec
from src.data.tokenizers import WordTokenizer
from src.data.vocab import SPECIALS, Vocabulary
from src.entry import user_error_cause
from src.errors import ConfigError
from src.hardware import check_precision
from src.lightning_compat import precision_choices

_ABSENT = object()
# a vocabulary of the special tokens and a few words: enough to build any model
_DRY_VOCAB_SIZE = 8


def _int_at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda value: is_int(value, minimum)


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_POSITIVE_INT = (_int_at_least(1), "an integer >= 1")
_NON_NEGATIVE = (lambda value: is_number(value) and value >= 0, "a number >= 0")
_POSITIVE = (lambda value: is_number(value) and value > 0, "a number > 0")
_PRECISIONS = precision_choices()

# option -> (check, what it must be): the options of torch's optimizers, Lightning's Trainer and the global
# seed; options absent from the composed config are not checked
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model.optimizer.lr": _POSITIVE,
    "model.optimizer.weight_decay": _NON_NEGATIVE,
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
    """Build what the data and model groups describe, so that every constructor check runs before the data
    is read. The parts first, so that an error of a part names that part's options."""
    _build("data", cfg.data)
    model = cfg.model
    with torch.device("meta"):
        _build("model.net", model.net, src_vocab_size=_DRY_VOCAB_SIZE, tgt_vocab_size=_DRY_VOCAB_SIZE)
    optimizer = _build("model.optimizer", model.optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    if model.get("scheduler") is not None:
        _build("model.scheduler", model.scheduler, optimizer=optimizer)
    for option in ("teacher_forcing", "val_generator"):
        if model.get(option) is not None:
            _build(f"model.{option}", model[option])
    if model.get("translator") is not None:  # the module completes it with these three
        _build("model.translator", model.translator, net=None, codec=None, generator=None)
    with torch.device("meta"):
        _build("model", model, codec=_dry_codec())


def _dry_codec() -> Codec:
    """A codec with `_DRY_VOCAB_SIZE` tokens per side: enough to build any model."""
    vocab = Vocabulary([f"w{i}" for i in range(_DRY_VOCAB_SIZE - len(SPECIALS))])
    return Codec(WordTokenizer(), WordTokenizer(), vocab, vocab)


def _build(option: str, node: DictConfig, **completion: Any) -> Any:
    """instantiate(node), then call it with `completion` when it is a partial; errors become ConfigError. An
    `OptionError` (an object that serves under several groups) is named after `option`."""
    try:
        built = instantiate(node, **({} if node.get("_partial_") else completion))
        return built(**completion) if node.get("_partial_") else built
    except Exception as err:  # whatever a constructor rejects, the config is what to fix
        cause = user_error_cause(err)
        if isinstance(cause, OptionError):
            raise cause.in_group(option) from None
        if cause is not None:
            raise ConfigError(str(cause)) from None
        raise ConfigError(
            f"{option} cannot be built from its config: {_innermost(err)}. Check its keys and values "
            "(`python -m src.train --cfg job` prints the composed config)."
        ) from None


def _innermost(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}"
