"""DDP: the length-bucketed batches are sharded over the ranks with no example lost or repeated within an
epoch (also when an epoch resumes half-way); `trainer=ddp_cpu` trains into one run folder and stops cleanly."""

import signal
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.types import RunMode
from hydra.utils import instantiate

from src.checkpoint import read_checkpoint
from src.data.datamodule import TranslationDataModule
from src.errors import ConfigError
from src.train import check_launch
from tests.conftest import compose_config
from tests.tiny_runs import Run, hydra_job, read_records, write_tiny_task

RANKS = 2


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_task(tmp_path_factory.mktemp("task"), n_train=101)  # 101: not a multiple of anything


@pytest.fixture(scope="module")
def sources(task: dict[str, Path]) -> list[str]:
    return [line.split("\t")[0] for line in task["train"].read_text().splitlines()]


def rank_datamodule(task: dict[str, Path], rank: int, batch_by: str = "sentences") -> TranslationDataModule:
    """The data module as rank `rank` of a 2-process DDP run builds it."""
    size = 10 if batch_by == "sentences" else 60
    cfg = compose_config(
        overrides=[
            f"data.train_path={task['train']}",
            f"data.valid_path={task['valid']}",
            f"data.batch_by={batch_by}",
            f"data.batch_size={size}",
        ]
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    datamodule.trainer = SimpleNamespace(world_size=RANKS, global_rank=rank)
    return datamodule


@pytest.mark.parametrize("batch_by", ["sentences", "tokens"])
def test_two_ranks_see_every_training_example_exactly_once_per_epoch(task, sources, batch_by):
    loaders = [rank_datamodule(task, rank, batch_by).train_dataloader() for rank in range(RANKS)]
    for epoch in range(2):
        seen = []
        for loader in loaders:
            loader.batch_sampler.set_epoch(epoch)  # what Lightning does at the start of every epoch
            batches = list(loader)
            assert len(batches) == len(loader)
            seen += [src for batch in batches for src in batch.src_text]
        assert Counter(seen) == Counter(sources)
        assert len(loaders[0]) == len(loaders[1])  # the ranks step together


def test_an_epoch_resumed_half_way_on_two_ranks_still_covers_every_example_once(task, sources):
    seen, states = [], []
    for rank in range(RANKS):
        loader = rank_datamodule(task, rank).train_dataloader()
        loader.batch_sampler.set_epoch(3)
        iterator = iter(loader)
        seen += [src for _ in range(2) for src in next(iterator).src_text]
        states.append(loader.state_dict())  # what a checkpoint written now holds
    for rank, state in enumerate(states):
        resumed = rank_datamodule(task, rank).train_dataloader()
        resumed.load_state_dict(state)
        resumed.batch_sampler.set_epoch(3)
        seen += [src for batch in resumed for src in batch.src_text]
    assert Counter(seen) == Counter(sources)


@pytest.mark.slow
def test_ddp_cpu_run_shards_batches_into_one_run_folder_and_stops_cleanly_on_ctrl_c(tmp_path):
    run = Run(tmp_path, "trainer=ddp_cpu")  # 96 examples: 6 batches of 16, 3 per rank and epoch
    run.wait_for_step(4)
    assert run.stop(signal.SIGINT) == 128 + signal.SIGINT  # both ranks stopped, neither hung

    (run_dir,) = (run.log_dir / "train" / "runs").iterdir()  # the ranks share the parent's Hydra run folder
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert {path.name for path in run_dir.glob("*_vocab.txt")} == {"src_vocab.txt", "tgt_vocab.txt"}
    output = run.output.read_text()
    assert output.count("training stopped at step") == 1  # rank zero speaks for the run

    steps = [record for record in read_records(run.recorder) if "loss" in record]
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == max(
        r["step"] for r in steps
    )
    first_epoch = [record for record in steps if record["step"] <= 3]
    assert Counter(record["rank"] for record in first_epoch) == {0: 3, 1: 3}
    seen = [src for record in first_epoch for src in record["sources"]]
    assert Counter(seen) == Counter(
        line.split("\t")[0] for line in run.task["train"].read_text().splitlines()
    )


def test_ddp_started_by_lightning_inside_a_sweep_is_refused(tmp_path):
    # Lightning would start rank 1 by re-running the command line: `-m ...`, the whole sweep again
    with hydra_job(["trainer=ddp_cpu"], tmp_path, mode=RunMode.MULTIRUN) as cfg:
        trainer = instantiate(cfg.trainer)
        with pytest.raises(ConfigError, match="cannot run inside a -m sweep"):
            check_launch(trainer)
