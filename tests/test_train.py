"""The train entry point end to end: config composition, run folders, and a model that learns."""

import re
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CONF_DIR, compose_config, run_entry

TINY = [
    "model.net.embedding_size=32",
    "encoder.hidden_size=64",
    "attention.hidden_size=64",
    "decoder.hidden_size=64",
]


def data_overrides(task: dict[str, Path]) -> list[str]:
    return [
        f"data.train_path={task['train']}",
        f"data.valid_path={task['valid']}",
        f"data.test_path={task['test']}",
    ]


def only_run_folder(log_dir: Path) -> Path:
    (run,) = (log_dir / "train" / "runs").iterdir()
    return run


def test_default_config_composes_with_every_group():
    cfg = compose_config()
    for group in (
        "data",
        "encoder",
        "attention",
        "decoder",
        "model",
        "trainer",
        "callbacks",
        "logger",
        "paths",
    ):
        assert group in cfg, group
    assert cfg.model.net.encoder._target_ == "src.models.encoders.RecurrentEncoder"
    assert cfg.model.net.attention._target_ == "src.models.attention.BahdanauAttention"
    assert cfg.optimized_metric == "val/bleu"


@pytest.mark.parametrize(
    "group", ["data", "encoder", "attention", "decoder", "trainer", "experiment", "debug", "hparams_search"]
)
def test_every_option_of_a_group_composes(group):
    for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
        cfg = compose_config(overrides=[f"{group}={option}"])
        assert cfg.model.net._target_ == "src.models.seq2seq.Seq2Seq", f"{group}={option}"


@pytest.mark.slow
def test_fast_dev_run_exits_zero_and_writes_the_run_folder(tmp_path):
    result = run_entry("src.train", "trainer.fast_dev_run=true", *TINY, f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run_folder(tmp_path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", run.name)
    assert (run / ".hydra" / "config.yaml").is_file()
    assert (run / "train.log").is_file()
    assert (run / "src_vocab.txt").is_file() and (run / "tgt_vocab.txt").is_file()


@pytest.mark.slow
def test_conv_encoder_with_bahdanau_attention_runs(tmp_path):
    result = run_entry(
        "src.train",
        "attention=bahdanau",
        "encoder=conv",
        "trainer.fast_dev_run=true",
        *TINY,
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_reverse_task_reaches_bleu_above_90_and_writes_everything(tmp_path, reverse_task):
    result = run_entry(
        "src.train",
        *data_overrides(reverse_task),
        *TINY,
        "model.optimizer.lr=0.003",
        "model.net.embedding_dropout=0.0",
        "data.batch_size=32",
        "trainer.max_epochs=6",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run_folder(tmp_path)
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    best = max(event.value for event in events.Scalars("val/bleu"))
    assert best > 90, best
    assert re.search(r"Best validation BLEU: (\d+\.\d+)", result.stdout + result.stderr)
