"""Sweeps as a user runs them (`python -m src.train -m ...`), CI-sized: a 2x2 grid with a failing half,
a grid read back from TensorBoard's HPARAMS data, the joblib and submitit_local launchers, and Optuna
searches of 2 trials."""

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from src.report import report
from tests.conftest import run_entry, write_tsv

pytestmark = pytest.mark.slow

# RNN decoder over a conv or RNN encoder, small enough for a job to take seconds
TINY = (
    "model.net.embedding_size=16",
    "encoder.hidden_size=32",
    "decoder.hidden_size=32",
    "data.batch_size=16",
)
# one short epoch, so that each job logs a validation BLEU to TensorBoard
SHORT = (
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "test=false",
)


def tiny_task(directory: Path) -> tuple[str, ...]:
    """Overrides pointing data at a tiny digit-reversal corpus written in `directory`."""
    rng = random.Random(0)

    def pairs(n: int) -> list[tuple[str, str]]:
        lines = [[str(rng.randrange(10)) for _ in range(rng.randint(3, 6))] for _ in range(n)]
        return [(" ".join(d), " ".join(reversed(d))) for d in lines]

    paths = {
        split: write_tsv(directory / f"{split}.tsv", pairs(n)) for split, n in [("train", 200), ("valid", 20)]
    }
    return (f"data.train_path={paths['train']}", f"data.valid_path={paths['valid']}", "data.test_path=null")


def sweep(directory: Path, *overrides: str) -> Path:
    """Run `python -m src.train -m <overrides>` with outputs in `directory`; returns the multirun folder."""
    result = run_entry(
        "src.train", "-m", *tiny_task(directory), *TINY, *overrides, f"paths.log_dir={directory}"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (folder,) = directory.glob("*/multiruns/*")
    return folder


def jobs(folder: Path) -> list[Path]:
    """The job folders of a multirun, by job number."""
    return sorted(
        (p for p in folder.iterdir() if (p / ".hydra").is_dir()), key=lambda p: int(p.name.split("_")[0])
    )


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2x2 grid in which the two jobs with an even kernel size fail."""
    return sweep(
        tmp_path_factory.mktemp("grid"),
        "encoder=conv",
        "attention=bahdanau,luong_dot",
        "encoder.kernel_size=2,3",
        *SHORT,
    )


def test_grid_runs_every_combination_in_its_own_numbered_folder(grid: Path):
    names = [job.name for job in jobs(grid)]
    assert [name.split("_")[0] for name in names] == ["0", "1", "2", "3"]
    combinations = {
        (attention, kernel)
        for name in names
        for attention in ("bahdanau", "luong_dot")
        for kernel in (2, 3)
        if f"attention={attention}," in name and f"encoder.kernel_size={kernel}," in name
    }
    assert len(combinations) == 4


def test_a_failing_job_does_not_stop_the_sweep(grid: Path):
    for job in jobs(grid):
        if "encoder.kernel_size=2" in job.name:
            assert summary(job)["status"] == "failed"
            assert "encoder.kernel_size=2 must be odd" in (job / "error.log").read_text()
        else:
            assert summary(job)["status"] == "completed"
            assert summary(job)["best_val_bleu"] is not None
            assert (job / "checkpoints" / "best.ckpt").is_file()


def test_a_completed_job_summarises_its_training(grid: Path):
    completed = [summary(job) for job in jobs(grid) if "encoder.kernel_size=3" in job.name]
    assert [(s["epochs"], s["steps"]) for s in completed] == [(1.0, 2), (1.0, 2)]
    assert all(s["num_parameters"] > 0 and s["wall_time_s"] > 0 for s in completed)


def test_each_job_logs_to_tensorboard_in_a_folder_named_by_its_overrides(grid: Path):
    event_dirs = {p.parent.relative_to(grid) for p in grid.glob("**/events.out.tfevents.*")}
    completed = [job.name for job in jobs(grid) if "encoder.kernel_size=3" in job.name]
    assert {d.parts[0] for d in event_dirs} == set(completed)  # one run per job, named by its folder
    assert all("attention=" in name for name in completed)


def test_report_on_the_multirun_ranks_every_job(grid: Path, tmp_path: Path):
    _, csv_path, _ = report(grid, tmp_path)
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["status"] for row in rows] == ["completed", "completed", "failed", "failed"]
    assert all("must be odd" in row["error"] for row in rows[2:])


@pytest.fixture(scope="module")
def attention_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`attention=bahdanau,none`: two jobs, each its own TensorBoard run with an HPARAMS session."""
    return sweep(tmp_path_factory.mktemp("attention_grid"), "attention=bahdanau,none", *SHORT)


def hparams_session(job: Path) -> tuple[api_pb2.Experiment, dict[str, Any], dict[str, float]]:
    """The job's HPARAMS data from its event file: the experiment (columns and metric tags it declares),
    the session's column values and the last value of each metric."""
    events = EventAccumulator(str(job / "tensorboard"), size_guidance={SCALARS: 0})
    events.Reload()
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    experiment = hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG])
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    values = {name: json_format.MessageToDict(value) for name, value in start.hparams.items()}
    metrics = {
        info.name.tag: events.Scalars(info.name.tag)[-1].value
        for info in experiment.metric_infos
        if info.name.tag in events.Tags()[SCALARS]
    }
    return experiment, values, metrics


def test_hparams_columns_name_each_jobs_attention_as_a_string(attention_grid: Path):
    attentions = []
    for job in jobs(attention_grid):
        experiment, values, _ = hparams_session(job)
        (attention,) = [info for info in experiment.hparam_infos if info.name == "attention"]
        assert attention.type == api_pb2.DATA_TYPE_STRING
        attentions.append(values["attention"])
        assert f"attention={values['attention']}" in job.name
    assert attentions == ["bahdanau", "none"]


def test_hparams_columns_hold_no_hydra_plumbing(attention_grid: Path):
    for job in jobs(attention_grid):
        experiment, values, _ = hparams_session(job)
        names = [info.name for info in experiment.hparam_infos]
        assert set(names) == set(values)
        assert not [name for name in names if "_target_" in name or "_partial_" in name]
        assert not [name for name in names if name.startswith(("callbacks", "logger", "paths", "hydra"))]
        assert values["trainer.max_epochs"] == 1  # an override, a number
        assert values["encoder.hidden_size"] == 32  # a curated setting


def test_hparams_marks_the_column_the_grid_varies_so_tensorboard_lists_it_first(attention_grid: Path):
    for job in jobs(attention_grid):
        experiment, _, _ = hparams_session(job)
        assert [info.name for info in experiment.hparam_infos if info.differs] == ["attention"]


def test_hparams_metrics_include_the_best_bleu_and_the_training_speed(attention_grid: Path):
    for job in jobs(attention_grid):
        experiment, _, metrics = hparams_session(job)
        assert {info.name.tag for info in experiment.metric_infos} >= {"hp/best_val_bleu", "hp/best_val_chrf",
                                                                      "hp/test_bleu", "hp/train_tokens_per_s"}  # fmt: skip
        assert metrics["hp/best_val_bleu"] == pytest.approx(summary(job)["best_val_bleu"])
        assert metrics["hp/best_epoch"] == 1.0 and metrics["hp/train_tokens_per_s"] > 0
        assert "hp/test_bleu" not in metrics  # test=false: declared, never measured


def test_report_shows_the_columns_and_metrics_hparams_shows(attention_grid: Path, tmp_path: Path):
    _, csv_path, _ = report(attention_grid, tmp_path)
    rows = {row["job"]: row for row in csv.DictReader(csv_path.open())}
    for job in jobs(attention_grid):
        _, values, metrics = hparams_session(job)
        row = rows[job.name]
        assert {name: _typed(row[name]) for name in values} == values
        assert float(row["best_val_bleu"]) == pytest.approx(metrics["hp/best_val_bleu"])
        assert float(row["train_tokens_per_s"]) == pytest.approx(metrics["hp/train_tokens_per_s"])


def _typed(cell: str) -> str | float:
    """A report.csv cell as HPARAMS holds it: a number (a double), else the string."""
    try:
        return float(cell)
    except ValueError:
        return cell


def test_joblib_launcher_runs_jobs_without_dataloader_workers(tmp_path: Path):
    folder = sweep(
        tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data.num_workers=2",
        "attention=bahdanau,luong_dot", "debug=fast",
    )  # fmt: skip
    assert [summary(job)["status"] for job in jobs(folder)] == ["completed", "completed"]
    for job in jobs(folder):
        assert (
            "data.num_workers=2 is not possible under hydra/launcher=joblib"
            in (job / "debug.log").read_text()
        )


def test_submitit_local_launcher_runs_each_job_as_a_submitted_process(tmp_path: Path):
    folder = sweep(tmp_path, "hydra/launcher=submitit_local", "attention=bahdanau,luong_dot", "debug=fast")
    assert [summary(job)["status"] for job in jobs(folder)] == ["completed", "completed"]
    assert list((folder / ".submitit").iterdir())  # submitit's own job folders and logs


def test_optuna_search_of_two_trials_reports_the_best(tmp_path: Path):
    folder = sweep(
        tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "attention=choice(luong_general,luong_dot)",
        "debug=fast",
    )  # fmt: skip
    bleu = [summary(job)["best_val_bleu"] for job in jobs(folder)]
    assert len(bleu) == 2 and None not in bleu
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(bleu))
    searched = {"model.optimizer.lr", "encoder.dropout", "decoder.dropout", "attention"}
    assert set(results["best_params"]) == searched  # fixed sizes (TINY) are out of the search


def test_optuna_marks_a_failing_trial_failed_and_goes_on(tmp_path: Path):
    # with seed=0, TPE's first (random) trials pick kernel size 3, then 2
    folder = sweep(
        tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "seed=0", "encoder=conv", "attention=luong_dot",
        "encoder.kernel_size=choice(2,3)", "model.optimizer.lr=0.001", "encoder.dropout=0.1", "decoder.dropout=0.1",
        "debug=fast",
    )  # fmt: skip
    assert [summary(job)["status"] for job in jobs(folder)] == ["completed", "failed"]
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert results["best_params"] == {"encoder.kernel_size": 3}
