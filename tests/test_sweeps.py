"""Sweep plumbing without running a sweep: job folder names, the joblib guard, failing jobs, launcher and
search configs."""

import json
import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from src.config import job_folder_name
from src.entry import record_failed_job
from src.errors import ConfigError
from src.launchers import fit_to_launcher
from tests.conftest import CONF_DIR, compose_config

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def test_job_folder_is_numbered_and_named_by_its_overrides():
    assert (
        job_folder_name(3, "attention=luong_general,encoder=conv") == "3_attention=luong_general,encoder=conv"
    )


def test_job_folder_without_overrides_is_its_number():
    assert job_folder_name(0, "") == "0"


def test_job_folder_name_has_no_unsafe_characters_and_is_cut():
    name = job_folder_name(7, "data.vocab=/a/b c.txt,model.scheduler={_target_: 'x'}")
    assert name == "7_data.vocab=_a_b_c.txt,model.scheduler=__target____x__"
    assert len(job_folder_name(12, "x" * 1000)) == len("12_") + 200


def test_joblib_launcher_turns_dataloader_workers_off_with_a_warning(caplog):
    cfg = compose_config(overrides=["data.num_workers=4"])
    with caplog.at_level(logging.WARNING, logger="seq2seq-lab"):
        fit_to_launcher(cfg, launcher_target=JOBLIB)
    assert cfg.data.num_workers == 0
    assert "data.num_workers=4 is not possible under hydra/launcher=joblib" in caplog.text


def test_other_launchers_keep_dataloader_workers():
    cfg = compose_config(overrides=["data.num_workers=4"])
    fit_to_launcher(cfg, launcher_target=BASIC)
    assert cfg.data.num_workers == 4


@pytest.fixture
def hydra_job(tmp_path: Path):
    """Make HydraConfig describe a job running in tmp_path; `mode` is set by the test."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)

    def start(mode: RunMode) -> None:
        cfg.hydra.mode = mode
        HydraConfig.instance().set_config(cfg)

    yield start
    HydraConfig.instance().cfg = None


def failing(err: Exception):
    def job() -> float:
        raise err

    return record_failed_job(job)


def test_a_failing_sweep_job_records_its_user_error_and_returns_none(hydra_job, tmp_path: Path):
    hydra_job(RunMode.MULTIRUN)
    assert failing(ConfigError("encoder.kernel_size=2 must be odd"))() is None
    assert (tmp_path / "error.log").read_text() == "ConfigError: encoder.kernel_size=2 must be odd\n"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == "ConfigError: encoder.kernel_size=2 must be odd"


def test_a_bug_in_a_sweep_job_is_recorded_with_its_traceback(hydra_job, tmp_path: Path):
    hydra_job(RunMode.MULTIRUN)
    assert failing(ZeroDivisionError("division by zero"))() is None
    error_log = (tmp_path / "error.log").read_text()
    assert error_log.startswith("Traceback (most recent call last):")
    assert error_log.endswith("ZeroDivisionError: division by zero\n")


def test_a_single_run_raises_as_before(hydra_job, tmp_path: Path):
    hydra_job(RunMode.RUN)
    with pytest.raises(ConfigError):
        failing(ConfigError("bad"))()
    assert not (tmp_path / "error.log").exists()


def test_slurm_launcher_is_submitit_with_our_cluster_settings():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.gpus_per_node=4",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 4, 1)
    assert launcher.timeout_min > 0 and launcher.cpus_per_task > 0 and launcher.mem_gb > 0


def test_optuna_search_maximises_val_bleu_over_lr_hidden_size_dropout_and_attention():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/bleu"
    assert set(OmegaConf.to_container(sweeper.params)) == {
        "model.optimizer.lr", "encoder.hidden_size", "decoder.hidden_size", "encoder.dropout",
        "decoder.dropout", "attention",
    }  # fmt: skip
