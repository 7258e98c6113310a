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


VALIDATE_SCRIPT = """
import json, sys
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from src.checkpoint import read_checkpoint
from src.config import register_resolvers

register_resolvers()
checkpoint = read_checkpoint(sys.argv[1])
config = OmegaConf.create(checkpoint["seq2seq_lab"]["config"])
config.data.eval_batch_size = 16
datamodule = instantiate(config.data)
datamodule.setup("validate")
module = instantiate(config.model, codec=datamodule.codec)
module.load_state_dict(checkpoint["state_dict"])
devices = int(sys.argv[2])
trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                    logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, use_distributed_sampler=False)
trainer.validate(module, datamodule=datamodule, verbose=False)
if trainer.is_global_zero:
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    with open(sys.argv[3], "w") as out:
        json.dump({**metrics, "texts_on_rank_0": len(module.validation_outputs.hypotheses)}, out)
"""


@pytest.mark.slow
def test_validation_scores_on_two_ddp_processes_equal_one_process(tiny_checkpoint, tmp_path):
    """The metrics sum their sufficient statistics over the processes: the same BLEU, chrF, loss and exact
    match as one process on the same data, though each process decoded only its share."""
    import json
    import os
    import subprocess
    import sys

    from src.config import PROJECT_ROOT

    script = tmp_path / "validate.py"
    script.write_text(VALIDATE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    results = []
    for devices in (1, 2):
        out = tmp_path / f"metrics_{devices}.json"
        subprocess.run(
            [sys.executable, str(script), str(tiny_checkpoint["ckpt"]), str(devices), str(out)],
            cwd=tmp_path, env=env, check=True, timeout=300, capture_output=True,
        )  # fmt: skip
        results.append(json.loads(out.read_text()))
    single, ddp = results
    assert (
        single["texts_on_rank_0"] == 100 and 0 < ddp["texts_on_rank_0"] < 100
    )  # each rank decoded its share
    assert single["val/bleu"] > 5
    for key in ("val/bleu", "val/chrf", "val/loss", "val/exact_match", "val/token_accuracy"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5), key
