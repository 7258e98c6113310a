"""What the watching callbacks share: when to write, where to write, and which sentences to watch.

They write from rank zero only, after real validations (not Lightning's sanity check), at the step
Lightning logs its own metrics at, so TensorBoard's step slider lines their images and text up with
`val/bleu`.
"""

import logging
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from src.decoding import Hypothesis
from src.lightning_compat import batches_that_stepped

log = logging.getLogger(__name__)


@dataclass
class WatchedSentence:
    source: str
    reference: str
    hypothesis: Hypothesis


def writes_after_validation(trainer: L.Trainer) -> bool:
    """True on rank zero after a real validation (the sanity check only proves the loop runs)."""
    return trainer.is_global_zero and not trainer.sanity_checking


def logging_step(trainer: L.Trainer) -> int:
    """The step Lightning logs the metrics of this moment at (e.g. `val/bleu` after a validation).

    Not `trainer.global_step`: Lightning logs at its count of batches that stepped the optimizer, and a
    validation runs before the batch that triggered it is counted, so `val/bleu` lands one step below
    `global_step`. Lightning's own `LearningRateMonitor` and `DeviceStatsMonitor` read this counter.
    """
    return batches_that_stepped(trainer)


def summary_writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the run's TensorBoardLogger (for images, text, histograms); None without one."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def log_scalars(trainer: L.Trainer, scalars: dict[str, float]) -> None:
    """Write scalars to every logger at `logging_step` (Lightning's loggers write on rank zero only)."""
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=logging_step(trainer))


class AttentionWatcher(Callback):
    """What the attention heatmaps and statistics share: the `num_sentences` watched sentences, and, for a
    model without attention (attention=none), one line at fit start that there is nothing to show."""

    shows = "attention"  # what the subclass shows, for that line

    def __init__(self, num_sentences: int) -> None:
        self.num_sentences = num_sentences

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.net.num_heads == 0 and trainer.is_global_zero:
            log.info("No %s: the model has no attention (attention=none).", self.shows)


def translate_watched(trainer: L.Trainer, module: L.LightningModule, n: int) -> list[WatchedSentence]:
    """The first `n` distinct sources of the validation split, translated by the module's translator once per
    validation: the heatmap, statistics and samples callbacks share one translation (the first `n` distinct
    sources are a prefix of the first `m > n`, so a callback that watches more translates only the rest).

    The same sentences at every validation and on any number of ranks: the datamodule holds the whole
    split (its sampler shards the batches, not the dataset).
    """
    moment = (trainer.state.stage, trainer.sanity_checking, trainer.current_epoch, trainer.global_step)
    shared = _translations.get(module)
    if shared is None or shared.moment != moment:
        shared = _translations[module] = _SharedTranslations(moment)
    if len(shared.sentences) < n:
        dataset = trainer.datamodule.datasets.get("valid")
        pairs = (
            first_distinct_sources(dataset.pairs, n)[len(shared.sentences) :] if dataset is not None else []
        )
        nbests = module.translator.translate([source for source, _ in pairs])
        shared.sentences += [
            WatchedSentence(source, reference, nbest[0])
            for (source, reference), nbest in zip(pairs, nbests, strict=True)
        ]
    return shared.sentences[:n]


@dataclass
class _SharedTranslations:
    """The watched sentences translated at one moment (stage, sanity check, epoch, step) of a run."""

    moment: tuple
    sentences: list[WatchedSentence] = field(default_factory=list)


# module -> its watched sentences at the latest validation (weak: a module's entry goes with the module)
_translations: "WeakKeyDictionary[L.LightningModule, _SharedTranslations]" = WeakKeyDictionary()


def first_distinct_sources(pairs: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """The first `n` pairs with distinct sources: a source with several references (Tatoeba has many) is
    watched once, beside its first reference."""
    first: dict[str, str] = {}
    for source, reference in pairs:
        if len(first) == n:
            break
        first.setdefault(source, reference)
    return list(first.items())
