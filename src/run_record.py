"""The machine-readable record a run leaves in its folder, for `src.report` and other tools.

* `summary.json`: written by `src.train` when a run ends (completed, or interrupted by Ctrl-C/SIGTERM).
* when a job of a sweep fails, `error.log` (the message, or the traceback of a bug) and a `summary.json`
  with status `failed`, so that the sweep goes on and the report still shows the job (see `src.entry`).

A folder with neither is `incomplete`: a job still running, or one that was killed outright.
"""

import json
import math
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.log"


@dataclass
class RunSummary:
    status: str  # completed | interrupted | failed | incomplete
    # the metrics of `src.run_columns.METRICS`, under the same names (`hp/<name>` in TensorBoard)
    best_val_bleu: float | None = None
    best_val_chrf: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None
    best_epoch: float | None = None
    test_bleu: float | None = None
    test_chrf: float | None = None
    train_time_s: float | None = None
    train_tokens_per_s: float | None = None
    epochs: float | None = None  # with the fraction of an unfinished epoch (a time budget stops mid-epoch)
    steps: int | None = None
    wall_time_s: float | None = None  # the whole run: data, training, test
    num_parameters: int | None = None
    error: str | None = None  # the last line of the error, for failed jobs
    # the run's comparable columns (`src.run_columns`), as its HPARAMS row shows them
    columns: dict[str, Any] = field(default_factory=dict)
    # the test scores per source-length bucket (`src.metrics.ScoresByLength`; model.length_buckets)
    test_by_length: list[dict[str, Any]] | None = None
    # where it trained (`src.hardware.machine`: date, CPU, threads, versions, git commit), as the process that
    # finished the run started (a resumed run: the last process's)
    machine: dict[str, Any] | None = None

    @classmethod
    def from_trainer(
        cls,
        trainer: Any,
        model: Any,
        wall_time_s: float,
        metrics: dict[str, Any] | None = None,
        columns: dict[str, Any] | None = None,
        machine: dict[str, Any] | None = None,
    ) -> "RunSummary":
        """What a finished `lightning.Trainer` knows about the run of `model` (a `TranslationModule`), with
        the metrics and columns a `src.callbacks.run_metrics.RunMetrics` kept."""
        measured = {name: _finite(value) for name, value in (metrics or {}).items()}
        measured.setdefault("best_val_bleu", _finite(model.best_bleu))
        measured.setdefault("test_bleu", _finite(trainer.callback_metrics.get("test/bleu")))
        if measured.get("best_step") is not None:
            measured["best_step"] = int(measured["best_step"])
        return cls(
            status="interrupted" if trainer.interrupted else "completed",
            **measured,
            epochs=epochs_trained(trainer),
            steps=trainer.global_step,
            wall_time_s=round(wall_time_s, 1),
            num_parameters=sum(p.numel() for p in model.parameters()),
            columns=dict(columns or {}),
            test_by_length=getattr(model, "test_by_length", None),
            machine=machine,
        )

    def write(self, run_dir: Path) -> None:
        (run_dir / SUMMARY_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def write_failure(run_dir: Path, err: BaseException, wall_time_s: float, user_error: bool) -> None:
    """error.log (the message of a user error, the traceback of a bug) and a `failed` summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if user_error:
        text = f"{type(err).__name__}: {err}\n"
    else:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    (run_dir / ERROR_FILE).write_text(text, encoding="utf-8")
    last_line = f"{type(err).__name__}: {err}".strip().splitlines()[-1]
    RunSummary(status="failed", wall_time_s=round(wall_time_s, 1), error=last_line).write(run_dir)


def read_record(run_dir: Path) -> RunSummary:
    """The run's summary.json, or an `incomplete` summary when it has none (still running, or killed)."""
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return RunSummary(status="incomplete")
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        return RunSummary(**{k: v for k, v in fields.items() if k in RunSummary.__dataclass_fields__})
    except (json.JSONDecodeError, TypeError):
        return RunSummary(status="incomplete", error=f"unreadable {SUMMARY_FILE}")


def epochs_trained(trainer: Any) -> float:
    """Training batches seen / batches per epoch; whole epochs when the loader has no length."""
    batches = trainer.num_training_batches
    if not math.isfinite(batches) or batches <= 0:
        return trainer.current_epoch
    return round(trainer.global_step * trainer.accumulate_grad_batches / batches, 2)


def _finite(value: Any) -> float | None:
    """A plain float for JSON, or None for a missing or infinite metric (e.g. no validation ran)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
