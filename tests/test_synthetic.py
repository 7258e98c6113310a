"""Toy tasks: deterministic generation, length extrapolation, and a reverse model that learns in seconds."""

import json
import random

import pytest
import yaml

from src.data.synthetic import SyntheticDataModule, generate_task, make_pair, symbols
from src.errors import ConfigError
from src.report import report
from tests.tiny_runs import train_here

SMALL = {"num_symbols": 8, "train_lengths": (1, 5), "test_lengths": (6, 9), "train_size": 300,
         "valid_size": 20, "test_size": 30, "seed": 3}  # fmt: skip


def test_the_generator_is_deterministic_for_a_seed():
    assert generate_task("reverse", **SMALL) == generate_task("reverse", **SMALL)
    assert generate_task("reverse", **SMALL) != generate_task("reverse", **{**SMALL, "seed": 4})


def test_test_lengths_are_outside_the_training_range_when_asked_and_sources_never_repeat():
    splits = generate_task("copy", **SMALL)
    assert all(1 <= len(s.split()) <= 5 for s, _ in splits["train"] + splits["valid"])
    assert all(6 <= len(s.split()) <= 9 for s, _ in splits["test"])
    sources = [s for split in splits.values() for s, _ in split]
    assert len(sources) == len(set(sources))


@pytest.mark.parametrize(
    ("task", "target"), [("copy", "c a d b"), ("reverse", "b d a c"), ("sort", "a b c d")]
)
def test_each_task_maps_its_source_to_its_target(task, target):
    class Fixed(random.Random):
        def choice(self, seq):
            return next(self.letters)

    rng = Fixed(0)
    rng.letters = iter("cadb")
    assert make_pair(task, 4, symbols(4), rng) == ("c a d b", target)


def test_lookup_answers_the_queried_keys_in_order():
    source, target = make_pair("lookup", 3, symbols(10), random.Random(1))
    words = source.split()
    values = dict(zip(words[0:6:2], words[1:6:2], strict=True))
    assert words[6] == "=" and target.split() == [values[key] for key in words[7:]]


def test_bad_options_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="data.task='shuffle' is invalid"):
        SyntheticDataModule(str(tmp_path), task="shuffle")
    with pytest.raises(ConfigError, match="data.train_lengths must be"):
        SyntheticDataModule(str(tmp_path), train_lengths=[5, 2])
    with pytest.raises(ConfigError, match="data.train_path is set, but data=synthetic writes its own files"):
        SyntheticDataModule(str(tmp_path), train_path="x.tsv")
    with pytest.raises(ConfigError, match="cannot draw 500 distinct"):
        SyntheticDataModule(str(tmp_path), num_symbols=2, train_lengths=[1, 2], train_size=500).setup()


@pytest.mark.slow
def test_a_small_reverse_model_beats_chance_in_seconds_and_reports_by_length(tmp_path):
    overrides = [
        "data=synthetic", "data.task=reverse", "data.num_symbols=6", "data.train_lengths=[2,5]",
        "data.test_lengths=[2,8]", "data.train_size=1500", "data.valid_size=50", "data.test_size=60",
        "data.batch_size=32", "model.net.embedding_size=32", "encoder.hidden_size=64", "decoder.hidden_size=64",
        "attention.hidden_size=64", "model.optimizer.lr=0.005", "trainer.max_epochs=4", "trainer.accelerator=cpu",
        "model.length_buckets=[3,5]", "~logger", "~callbacks.lr_monitor", "~callbacks.progress_bar",
        "++trainer.enable_progress_bar=false", f"paths.log_dir={tmp_path / 'logs'}",
    ]  # fmt: skip
    train_here(overrides, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = summary["test_by_length"]
    assert [row["bucket"] for row in rows] == ["1-3", "4-5", "6+"]
    assert sum(row["sentences"] for row in rows) == 60
    # chance: 1/6 per token, (1/6)^n per sequence; inside the training lengths the model must do far better
    assert rows[0]["exact_match"] > 0.3 and rows[0]["token_accuracy"] > 0.5
    assert (tmp_path / "run" / "data" / "train.tsv").is_file()  # the task, written into the run
    (tmp_path / "run" / ".hydra").mkdir()  # what Hydra writes for a real run (train_here runs in-process)
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    paths = report(tmp_path / "run", tmp_path / "report")
    assert (tmp_path / "report" / "report_by_length.png") in paths
