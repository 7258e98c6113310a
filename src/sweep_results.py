"""The runs of a folder (a multirun, or any folder of runs) side by side: a ranked table and a figure.

Each run is read from its own folder: `.hydra/overrides.yaml` (what was typed), `summary.json` (see
`src.run_record`: the run's comparable columns and metrics, as its HPARAMS row in TensorBoard shows them,
with epochs, time, parameters and status) and the TensorBoard event files (the `val/bleu` curve). A run
that failed or never finished still gets a row; its columns come from its `.hydra/` files.
"""

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files

import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from src.errors import ConfigError  # noqa: E402
from src.run_columns import METRICS, Column, columns_from_run_folder  # noqa: E402
from src.run_record import ERROR_FILE, RunSummary, read_record  # noqa: E402

BLEU_TAG = "val/bleu"
# report.csv: these, then each run's comparable columns and metrics (src.run_columns), then the record's rest
CSV_LEADING = ["rank", "job", "overrides"]
CSV_TRAILING = ["epochs", "steps", "wall_time_s", "status", "error"]


@dataclass
class RunResult:
    folder: Path
    name: str  # the folder, relative to the one reported on
    overrides: list[str]
    summary: RunSummary
    curve: list[tuple[int, float]] = field(default_factory=list)  # (training step, validation BLEU)
    columns: dict[str, Column] = field(default_factory=dict)  # what its HPARAMS row shows (src.run_columns)

    @property
    def best_bleu(self) -> float | None:
        """From summary.json; for a run that never wrote one, the best point of its curve so far."""
        if self.summary.best_val_bleu is not None:
            return self.summary.best_val_bleu
        return max((bleu for _, bleu in self.curve), default=None)


def collect_runs(folder: Path) -> list[RunResult]:
    """Every run under `folder` (any folder holding `.hydra/overrides.yaml`), best BLEU first."""
    if not folder.is_dir():
        raise ConfigError(
            f"{folder} is not a folder; give a multirun folder, e.g. outputs/train/multiruns/<date>_<time>"
        )
    run_dirs = sorted((p.parent.parent for p in folder.glob("**/.hydra/overrides.yaml")), key=_natural_key)
    if not run_dirs:
        raise ConfigError(
            f"No runs in {folder}: a run's folder holds .hydra/overrides.yaml. Give the folder a sweep "
            "(python -m src.train -m ...) or a run wrote, e.g. outputs/train/multiruns/<date>_<time>."
        )
    runs = [read_run(run_dir, folder) for run_dir in run_dirs]
    return sorted(runs, key=lambda r: -r.best_bleu if r.best_bleu is not None else math.inf)


def read_run(run_dir: Path, root: Path) -> RunResult:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text(encoding="utf-8")) or []
    name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    summary = read_record(run_dir)
    # summary.json records the columns a run logged; a run that failed or never finished has its .hydra/ files
    columns = summary.columns or columns_from_run_folder(run_dir, summary.num_parameters)
    return RunResult(run_dir, name, [str(o) for o in overrides], summary, bleu_curve(run_dir), columns)


def bleu_curve(run_dir: Path) -> list[tuple[int, float]]:
    """The `val/bleu` points of every TensorBoard event file in the run's folder, by training step."""
    points: dict[int, float] = {}
    for events_dir in sorted({p.parent for p in run_dir.glob("**/events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        if BLEU_TAG in accumulator.Tags()["scalars"]:
            points.update((event.step, event.value) for event in accumulator.Scalars(BLEU_TAG))
    return sorted(points.items())


def varying_overrides(runs: list[RunResult]) -> tuple[list[str], list[list[str]]]:
    """The overrides all runs share, and for each run those that set it apart."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if len(runs) > 1 else set()
    return sorted(common), [[o for o in r.overrides if o not in common] for r in runs]


def markdown_table(runs: list[RunResult]) -> str:
    common, varying = varying_overrides(runs)
    header = "| rank | job | overrides | best val BLEU | val chrF | test BLEU | best at epoch | epochs "
    lines = [header + "| wall time | train tokens/s | parameters | status |"]
    lines.append("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for rank, (run, overrides) in enumerate(zip(runs, varying, strict=True), start=1):
        s = run.summary
        cells = [
            str(rank),
            _job_label(run),
            " ".join(overrides).replace("|", "\\|") or "(none)",
            _fmt(run.best_bleu, "{:.2f}"),
            _fmt(s.best_val_chrf, "{:.2f}"),
            _fmt(s.test_bleu, "{:.2f}"),
            _fmt(s.best_epoch, "{:g}"),
            _fmt(s.epochs, "{:g}"),
            _fmt(s.wall_time_s, _duration),
            _fmt(s.train_tokens_per_s, "{:,.0f}"),
            _fmt(s.num_parameters, _count),
            s.status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if common:
        lines += ["", "Common to all jobs: `" + " ".join(common) + "`"]
    failed = [r for r in runs if r.summary.status == "failed"]
    if failed:
        lines += ["", "Failed jobs:"]
        lines += [f"- {_job_label(r)}: {r.summary.error} (see {r.folder / ERROR_FILE})" for r in failed]
    return "\n".join(lines) + "\n"


def write_csv(runs: list[RunResult], path: Path) -> None:
    """One row per run: rank, job, overrides, the comparable columns (those of all runs, in order), the
    metrics (`src.run_columns.METRICS`), epochs, steps, wall time, status and error."""
    columns = list(dict.fromkeys(name for run in runs for name in run.columns))
    fields = [*CSV_LEADING, *columns, *METRICS, *CSV_TRAILING]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(fields)))
        writer.writeheader()
        for rank, run in enumerate(runs, start=1):
            s = run.summary
            row = {"rank": rank, "job": run.name, "overrides": " ".join(run.overrides), **run.columns}
            row.update({name: getattr(s, name) for name in (*METRICS, *CSV_TRAILING)})
            row["best_val_bleu"] = run.best_bleu
            writer.writerow(row)


def report_figure(runs: list[RunResult]) -> Figure:
    """Left: best validation BLEU of each run, ranked. Right: the validation BLEU curves of all runs."""
    _, varying = varying_overrides(runs)
    labels = [_short(f"{_job_label(r)} {' '.join(o)}".strip()) for r, o in zip(runs, varying, strict=True)]
    figure, (bars, curves) = plt.subplots(1, 2, figsize=(14, max(4.0, 0.35 * len(runs) + 2)))
    bars.barh(range(len(runs)), [r.best_bleu or 0.0 for r in runs])
    for row, run in enumerate(runs):
        text, colour = (
            (f" {run.best_bleu:.2f}", "black") if run.best_bleu is not None else (" no BLEU", "tab:red")
        )
        bars.text(
            run.best_bleu or 0.0, row, f"{text} ({run.summary.status})", va="center", fontsize=8, color=colour
        )
    bars.set_yticks(range(len(runs)), labels, fontsize=8)
    bars.invert_yaxis()  # rank 1 on top
    bars.set_xlabel("best validation BLEU")
    bars.margins(x=0.25)  # room for the text after the longest bar
    for run, label in zip(runs, labels, strict=True):
        if run.curve:
            steps, bleu = zip(*run.curve, strict=True)
            curves.plot(steps, bleu, marker=".", label=label)
    curves.set_xlabel("training step")
    curves.set_ylabel("validation BLEU")
    if any(r.curve for r in runs):
        curves.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def _job_label(run: RunResult) -> str:
    """The job number of a sweep's folder (`3_attention=...` -> `3`), else the folder's name."""
    match = re.match(r"(\d+)(_|$)", run.folder.name)
    return match.group(1) if match else run.name


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _fmt(value: object, form: object) -> str:
    if value is None:
        return "–"
    return form(value) if callable(form) else str(form).format(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def _short(text: str, max_chars: int = 60) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
