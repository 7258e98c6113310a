"""A run's comparable columns (`src.run_columns`): what HPARAMS and `src.report` both show."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from src.config import register_resolvers, to_plain
from src.run_columns import CURATED, columns_from_run_folder, current_run_columns, run_columns, swept_columns
from tests.conftest import CONF_DIR

register_resolvers()

OVERRIDES = [
    "attention=none",
    "model.optimizer.lr=0.01",
    "+trainer.limit_train_batches=2",
    "model.net.tie_embeddings=true",
    "model.scheduler={_target_: torch.optim.lr_scheduler.ReduceLROnPlateau, _partial_: true, mode: max}",
    "trainer.precision=32",
    "data.train_path=/elsewhere/train.tsv",
    "++callbacks.early_stopping.patience=2",
    "~logger",
]


@pytest.fixture
def hydra_run(tmp_path: Path):
    """Hydra's state as `src.train` has it for a run of OVERRIDES; yields that run's resolved config."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=OVERRIDES, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    hydra_node = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    yield cfg, hydra_node
    HydraConfig.instance().cfg = None


def test_columns_are_the_group_choices_then_the_overrides_then_the_curated_settings(hydra_run):
    cfg, _ = hydra_run
    names = list(current_run_columns(to_plain(cfg), num_parameters=1000))
    assert names[:7] == [
        "attention",
        "encoder",
        "decoder",
        "data",
        "tokenizer",
        "tokenizer@tgt_tokenizer",
        "experiment",
    ]
    overridden = ["model.optimizer.lr", "trainer.limit_train_batches", "model.net.tie_embeddings", "model.scheduler",
                  "trainer.precision"]  # fmt: skip
    start = names.index(overridden[0])
    assert names[start : start + len(overridden)] == overridden
    curated = [name for name in names[start + len(overridden) :] if name != "num_parameters"]
    assert curated == [key for key in CURATED if key in curated] and "model.net.embedding_size" in curated
    assert names[-1] == "num_parameters"


def test_no_column_is_hydra_plumbing_or_where_the_run_reads(hydra_run):
    cfg, _ = hydra_run
    names = current_run_columns(to_plain(cfg))
    assert not [name for name in names if "_target_" in name or "_partial_" in name]
    assert not [name for name in names if name.startswith(("callbacks", "logger", "paths", "hydra"))]
    assert "data.train_path" not in names


def test_choices_and_discrete_values_are_strings_and_numbers_are_numbers(hydra_run):
    cfg, _ = hydra_run
    columns = current_run_columns(to_plain(cfg), num_parameters=1000)
    assert (columns["attention"], columns["encoder"], columns["experiment"]) == ("none", "lstm", "null")
    assert columns["model.optimizer.lr"] == 0.01 and columns["model.net.embedding_size"] == 256
    assert columns["model.net.tie_embeddings"] == "true"
    assert columns["model.scheduler"] == "ReduceLROnPlateau"
    assert columns["trainer.precision"] == "32"  # a choice of precision, even when typed as a number
    assert columns["num_parameters"] == 1000


def test_the_columns_read_back_from_a_run_folder_equal_those_of_the_running_job(hydra_run, tmp_path: Path):
    cfg, hydra_node = hydra_run
    (tmp_path / ".hydra").mkdir()  # what Hydra saves in every run's folder
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_node}), tmp_path / ".hydra" / "hydra.yaml")
    assert columns_from_run_folder(tmp_path, 1000) == current_run_columns(to_plain(cfg), 1000)


def test_without_hydra_a_run_has_its_curated_columns():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    assert not HydraConfig.initialized()
    columns = current_run_columns(cfg)
    assert "attention" not in columns and columns["encoder.hidden_size"] == 256


def test_a_folder_without_hydra_files_has_no_columns(tmp_path: Path):
    assert columns_from_run_folder(tmp_path) == {}


def test_group_choices_follow_the_researchers_order_and_drop_plumbing_groups():
    choices = {"hydra/launcher": "basic", "paths": "default", "callbacks": "default", "logger": "tensorboard",
               "decoder": "gru", "attention": "luong_dot", "extra": "x"}  # fmt: skip
    assert run_columns({}, choices, []) == {"attention": "luong_dot", "decoder": "gru", "extra": "x"}


def test_a_multirun_job_knows_the_columns_its_sweep_varies(tmp_path: Path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    sweep_dir = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    (sweep_dir / "3_encoder=conv").mkdir(parents=True)
    # what the basic sweeper saves: the command line, sweeps included
    OmegaConf.save(
        {"hydra": {"overrides": {"task": ["encoder=lstm,conv", "seed=1"]}}}, sweep_dir / "multirun.yaml"
    )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(sweep_dir / "3_encoder=conv")
        cfg.hydra.sweep.subdir = "3_encoder=conv"
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    try:
        swept = swept_columns()
    finally:
        HydraConfig.instance().cfg = None
    optuna = {"model.optimizer.lr", "encoder.hidden_size", "decoder.hidden_size", "encoder.dropout",
              "decoder.dropout", "attention"}  # fmt: skip
    assert swept == {"encoder", *optuna}


def test_a_single_run_varies_no_column(hydra_run):
    assert swept_columns() == set()
