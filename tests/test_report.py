"""`python -m src.report`: the runs of a folder ranked, from the files each run leaves in its own folder."""

import csv
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from src.errors import ConfigError
from src.report import main, report
from src.run_columns import METRICS
from src.run_record import RunSummary, write_failure
from src.sweep_results import collect_runs, markdown_table


def make_run(folder: Path, overrides: list[str], curve: list[float], summary: RunSummary | None) -> Path:
    """A run folder as src.train leaves it: overrides, TensorBoard val/bleu points, summary.json."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if curve:
        writer = SummaryWriter(str(folder / "tensorboard"))
        for step, bleu in enumerate(curve):
            writer.add_scalar("val/bleu", bleu, global_step=100 * (step + 1))
        writer.close()
    if summary is not None:
        summary.write(folder)
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Four jobs: two completed (BLEU 12 and 20), one failed, one still running (best point so far 15)."""
    root = tmp_path / "multirun"
    done = RunSummary("completed", epochs=3, steps=300, wall_time_s=65.0, num_parameters=1_234_567)
    make_run(root / "0_attention=bahdanau", ["encoder=lstm", "attention=bahdanau"], [5.0, 12.0, 11.0],
             replace(done, best_val_bleu=12.0))  # fmt: skip
    make_run(root / "1_attention=luong_general", ["encoder=lstm", "attention=luong_general"], [8.0, 20.0],
             replace(done, best_val_bleu=20.0))  # fmt: skip
    failed = make_run(root / "2_attention=luong_dot", ["encoder=lstm", "attention=luong_dot"], [], None)
    write_failure(failed, ConfigError("luong_dot needs equal sizes; use luong_general"), 1.0, user_error=True)
    make_run(root / "10_attention=none", ["encoder=lstm", "attention=none"], [15.0], None)
    return root


def test_runs_are_ranked_by_best_bleu_with_unscored_runs_last(sweep: Path):
    runs = collect_runs(sweep)
    assert [r.folder.name.split("_")[0] for r in runs] == ["1", "10", "0", "2"]
    assert [r.summary.status for r in runs] == ["completed", "incomplete", "completed", "failed"]


def test_a_run_without_summary_is_ranked_by_the_best_point_of_its_curve(sweep: Path):
    incomplete = next(r for r in collect_runs(sweep) if r.summary.status == "incomplete")
    assert incomplete.best_bleu == 15.0
    assert incomplete.curve == [(100, 15.0)]


def test_table_shows_what_sets_each_job_apart_and_the_errors(sweep: Path):
    table = markdown_table(collect_runs(sweep))
    first_row = table.splitlines()[2]
    assert first_row.split("|")[1:4] == [" 1 ", " 1 ", " attention=luong_general "]
    assert (
        "20.00" in first_row and "0:01:05" in first_row and "1.23M" in first_row and "completed" in first_row
    )
    assert "Common to all jobs: `encoder=lstm`" in table
    assert "ConfigError: luong_dot needs equal sizes; use luong_general" in table
    assert "2_attention=luong_dot/error.log" in table


def test_report_writes_markdown_csv_and_figure(sweep: Path, tmp_path: Path):
    md, csv_path, png = report(sweep, tmp_path / "out")
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["rank"], r["job"], r["status"]) for r in rows] == [
        ("1", "1_attention=luong_general", "completed"),
        ("2", "10_attention=none", "incomplete"),
        ("3", "0_attention=bahdanau", "completed"),
        ("4", "2_attention=luong_dot", "failed"),
    ]
    assert float(rows[0]["best_val_bleu"]) == 20.0 and rows[0]["num_parameters"] == "1234567"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.read_text().startswith("| rank | job | overrides |")


def test_csv_holds_the_columns_and_metrics_each_run_recorded_for_hparams(tmp_path: Path):
    columns = {
        "attention": "bahdanau",
        "encoder": "lstm",
        "model.optimizer.lr": 0.001,
        "num_parameters": 5000,
    }
    summary = RunSummary("completed", best_val_bleu=21.5, best_val_chrf=40.2, best_step=300, best_epoch=3.0,
                         train_tokens_per_s=1234.5, num_parameters=5000, columns=columns)  # fmt: skip
    make_run(tmp_path / "runs" / "0", ["attention=bahdanau"], [21.5], summary)
    _, csv_path, _ = report(tmp_path / "runs", tmp_path / "out")
    (row,) = list(csv.DictReader(csv_path.open()))
    names = list(row)
    assert names[:3] == ["rank", "job", "overrides"] and names[3:7] == list(columns)
    assert names[7:16] == list(METRICS)
    assert (row["attention"], row["model.optimizer.lr"], row["best_val_chrf"]) == (
        "bahdanau",
        "0.001",
        "40.2",
    )
    table = markdown_table(collect_runs(tmp_path / "runs"))
    assert "| 21.50 | 40.20 | – | 3 |" in table and "| 1,234 |" in table  # BLEU, chrF, no test, best epoch


def test_a_run_without_recorded_columns_gets_them_from_its_hydra_files(tmp_path: Path):
    run = make_run(
        tmp_path / "runs" / "0_attention=luong_dot",
        ["attention=luong_dot", "model.optimizer.lr=0.01"],
        [],
        None,
    )
    write_failure(run, ConfigError("luong_dot needs equal sizes"), 1.0, user_error=True)
    OmegaConf.save({"model": {"optimizer": {"lr": 0.01}}, "seed": 7}, run / ".hydra" / "config.yaml")
    hydra = {"runtime": {"choices": {"attention": "luong_dot", "paths": "default"}},
             "overrides": {"task": ["attention=luong_dot", "model.optimizer.lr=0.01"]}}  # fmt: skip
    OmegaConf.save({"hydra": hydra}, run / ".hydra" / "hydra.yaml")
    (result,) = collect_runs(tmp_path / "runs")
    assert result.columns == {"attention": "luong_dot", "model.optimizer.lr": 0.01, "seed": 7}


def test_a_folder_without_runs_is_a_user_error(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert not list(tmp_path.iterdir())  # nothing written


def test_summary_counts_the_fraction_of_an_epoch_a_time_budget_stopped_in():
    trainer = SimpleNamespace(
        interrupted=False, callback_metrics={}, current_epoch=1, global_step=349, accumulate_grad_batches=1,
        num_training_batches=2029,
    )  # fmt: skip
    model = SimpleNamespace(best_bleu=float("-inf"), parameters=lambda: [])
    summary = RunSummary.from_trainer(trainer, model, wall_time_s=420.04)
    assert (summary.epochs, summary.steps, summary.wall_time_s) == (0.17, 349, 420.0)
    assert summary.best_val_bleu is None  # no validation ran
