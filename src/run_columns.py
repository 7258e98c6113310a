"""What runs are compared by: one definition for TensorBoard's HPARAMS tab and for `python -m src.report`.

A run's **columns**, in this order:

1. the Hydra group choices (`attention`, `encoder`, `decoder`, `data`, `tokenizer`, `experiment`, ...),
   as strings (`null` for an empty optional group);
2. the values the user overrode on the command line (`model.optimizer.lr`, ...), except where the run
   reads and writes (`hydra.job.config.override_dirname.exclude_keys`) and the callback/logger plumbing;
3. a short curated set a researcher compares (`CURATED`: sizes, layers, heads, learning rate, batch,
   dropout, label smoothing, teacher forcing, precision, seed), then `num_parameters`.

Discrete values are strings (booleans `true`/`false`, a `{_target_: ...}` node its class name), numbers
are numbers, so that TensorBoard can filter and colour by them. No `_target_`/`_partial_` keys: the full
config stays in `<run>/.hydra/config.yaml`.

A run's **metrics** (`METRICS`), the same names in summary.json and, under `hp/`, in TensorBoard:
`best_*` describe the best checkpoint (the validation with the highest BLEU), the one `test_*` scores.

The choices and overrides come from Hydra's runtime state (`HydraConfig`) while a run trains, and from the
run folder's `.hydra/hydra.yaml` afterwards (`columns_from_run_folder`); without Hydra (the callbacks used
outside `src.train`) a run has the curated columns only. `swept_columns` names those a multirun varies.
"""

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

Column = str | int | float

# the groups a researcher picks, first and in this order; any other group follows in Hydra's order
CHOICE_ORDER = (
    "attention", "encoder", "decoder", "data", "tokenizer", "tokenizer@tgt_tokenizer", "experiment", "model",
    "trainer", "hparams_search", "debug",
)  # fmt: skip
# groups (and config keys) that set where and how a run reports, not what it trains
PLUMBING = ("hydra", "paths", "callbacks", "logger")
CURATED = (
    "model.net.embedding_size",
    "encoder.hidden_size", "encoder.d_model", "encoder.num_layers", "encoder.num_heads",
    "attention.hidden_size", "attention.num_heads",
    "decoder.hidden_size", "decoder.d_model", "decoder.num_layers", "decoder.num_heads",
    "tokenizer.vocab_size",
    "model.optimizer.lr", "model.scheduler",
    "data.batch_size", "data.batch_by", "trainer.accumulate_grad_batches",
    "model.net.embedding_dropout", "encoder.dropout", "attention.dropout", "decoder.dropout",
    "model.label_smoothing",
    "model.teacher_forcing.start", "model.teacher_forcing.end", "model.teacher_forcing.decay",
    "trainer.precision", "seed",
)  # fmt: skip
ALWAYS_STRINGS = ("trainer.precision",)  # `32` and `"32-true"` are the same choice, not a number
PARAMETERS = "num_parameters"

METRICS = (
    "best_val_bleu",  # the highest validation BLEU
    "best_val_chrf",  # chrF, loss, optimizer step and epoch (with its fraction) of that validation
    "best_val_loss",
    "best_step",
    "best_epoch",
    "test_bleu",  # the best checkpoint on the test split, when the run tests
    "test_chrf",
    "train_time_s",  # wall clock of the training loop, validations included
    "train_tokens_per_s",  # training target tokens per second, all processes, validation time excluded
)
METRIC_TAG = "hp/{name}"


def run_columns(
    config: Mapping | DictConfig,
    choices: Mapping[str, str | None],
    overrides: Iterable[str],
    exclude_keys: Iterable[str] = (),
    num_parameters: int | None = None,
) -> dict[str, Column]:
    """The comparable columns of the run of `config` (its resolved config), in order (see the module)."""
    config = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
    columns: dict[str, Column] = {}
    for group in _ordered_choice_groups(choices):
        columns[group] = "null" if choices[group] is None else str(choices[group])
    for key in _overridden_keys(overrides, set(exclude_keys), set(choices)):
        value = OmegaConf.select(config, key, default=_MISSING, throw_on_resolution_failure=False)
        if value is not _MISSING and key not in columns:
            columns[key] = column_value(key, value)
    for key in CURATED:
        value = OmegaConf.select(config, key, default=_MISSING, throw_on_resolution_failure=False)
        if value is not _MISSING and key not in columns:
            columns[key] = column_value(key, value)
    if num_parameters is not None:
        columns[PARAMETERS] = num_parameters
    return columns


def current_run_columns(config: Mapping | DictConfig, num_parameters: int | None = None) -> dict[str, Column]:
    """`run_columns` of the run in this process, with the choices and overrides of Hydra's job state."""
    if not HydraConfig.initialized():
        return run_columns(config, {}, [], num_parameters=num_parameters)
    hydra = HydraConfig.get()
    return run_columns(
        config,
        OmegaConf.to_container(hydra.runtime.choices),
        list(hydra.overrides.task),
        _exclude_keys(hydra),
        num_parameters,
    )


def columns_from_run_folder(run_dir: Path, num_parameters: int | None = None) -> dict[str, Column]:
    """`run_columns` of a finished (or failed) run, from the `.hydra/` files Hydra left in its folder;
    only `num_parameters` (when given) without them."""
    hydra_file, config_file = run_dir / ".hydra" / "hydra.yaml", run_dir / ".hydra" / "config.yaml"
    if not hydra_file.is_file() or not config_file.is_file():
        return {} if num_parameters is None else {PARAMETERS: num_parameters}
    hydra = OmegaConf.load(hydra_file).hydra
    return run_columns(
        OmegaConf.load(config_file),
        OmegaConf.to_container(hydra.runtime.choices),
        list(hydra.overrides.task),
        _exclude_keys(hydra),
        num_parameters,
    )


def swept_columns() -> set[str]:
    """The columns the multirun this job belongs to varies: its command line's sweeps (`attention=bahdanau,none`,
    from the `multirun.yaml` Hydra's basic sweeper writes in the sweep folder) and its sweeper's `params`
    (Optuna's search space, `conf/hparams_search/optuna.yaml`). Empty outside a multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return set()
    hydra = HydraConfig.get()
    params = OmegaConf.select(hydra, "sweeper.params", default=None) or {}
    sweeps = [f"{key}={value}" for key, value in params.items()]
    # the job's folder is <sweep.dir>/<sweep.subdir>; not sweep.dir itself, whose ${now:} a launcher's worker
    # process would resolve to its own start time
    sweep_dir = Path(hydra.runtime.output_dir).parents[len(Path(hydra.sweep.subdir).parts) - 1]
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        sweeps += list(OmegaConf.select(OmegaConf.load(multirun), "hydra.overrides.task", default=[]) or [])
    parsed = OverridesParser.create().parse_overrides(sweeps)
    return {_override_key(override) for override in parsed if override.is_sweep_override()}


def column_value(key: str, value: Any) -> Column:
    """A config value as TensorBoard can filter by it: numbers stay numbers, the rest becomes a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and key not in ALWAYS_STRINGS:
        return value
    if value is None:
        return "null"
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping) and "_target_" in value:
        return str(value["_target_"]).rsplit(".", 1)[-1]  # a scheduler: ReduceLROnPlateau
    return str(value)


def metric_tags(metrics: Mapping[str, float | int | None]) -> dict[str, float]:
    """The measured metrics (not None, finite) under their TensorBoard tags, `hp/<name>`."""
    return {
        METRIC_TAG.format(name=name): float(value)
        for name, value in metrics.items()
        if value is not None and math.isfinite(value)
    }


_MISSING = object()


def _ordered_choice_groups(choices: Mapping[str, str | None]) -> list[str]:
    groups = [group for group in choices if _root(group) not in PLUMBING]
    return [g for g in CHOICE_ORDER if g in groups] + [g for g in groups if g not in CHOICE_ORDER]


def _overridden_keys(overrides: Iterable[str], exclude_keys: set[str], groups: set[str]) -> list[str]:
    """The config keys the command line set, in its order: no group choices (they have their own
    columns), deletions, excluded keys, plumbing or Hydra's `_target_`-like keys."""
    keys = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = _override_key(override)
        if (
            override.is_delete()
            or key in groups
            or key in exclude_keys
            or _root(key) in PLUMBING
            or key.rsplit(".", 1)[-1].startswith("_")
        ):
            continue
        keys.append(key)
    return keys


def _override_key(override: Override) -> str:
    """The column an override sets: `model.optimizer.lr` for `+model.optimizer.lr=...`, a group's name."""
    return f"{override.key_or_group}@{override.package}" if override.package else override.key_or_group


def _root(key: str) -> str:
    """`hydra` for `hydra/launcher`, `callbacks` for `callbacks.hparams`, `tokenizer` for `tokenizer@tgt`."""
    return re.split(r"[./@]", key, maxsplit=1)[0]


def _exclude_keys(hydra: DictConfig) -> list[str]:
    """Where a job reads and writes: the keys Hydra leaves out of job folder names (conf/hydra/default.yaml)."""
    return list(OmegaConf.select(hydra, "job.config.override_dirname.exclude_keys", default=[]) or [])
