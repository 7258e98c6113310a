"""Tiny training runs for the distributed / precision / accumulation / resume / interrupt tests.

`tiny_overrides` trains a model of a few thousand parameters on a small reverse-the-digits task, in this
process (`train_here`) or in a subprocess (`Run`, which can be signalled); `StepRecorder` writes what each
training step and validation logged to a JSON-lines file, so that runs can be compared step by step.
"""

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, open_dict

from src.checkpoint import read_checkpoint
from src.config import PROJECT_ROOT
from src.train import train
from tests.conftest import CONF_DIR, TINY_MODEL, write_tsv


def write_tiny_task(directory: Path, n_train: int = 96, n_valid: int = 8) -> dict[str, Path]:
    """Reverse 3-6 digits; every training source is distinct, so a source identifies its example."""
    rng = random.Random(0)
    sources: dict[str, None] = {}
    while len(sources) < n_train + n_valid:
        sources[" ".join(str(rng.randrange(10)) for _ in range(rng.randint(3, 6)))] = None
    pairs = [(src, " ".join(reversed(src.split()))) for src in sources]
    return {
        "train": write_tsv(directory / "train.tsv", pairs[:n_train]),
        "valid": write_tsv(directory / "valid.tsv", pairs[n_train:]),
    }


def tiny_overrides(task: dict[str, Path], log_dir: Path, recorder: Path | None = None) -> list[str]:
    """A run of the tiny task on the CPU, quiet, without test, logger or rich output."""
    overrides = [
        f"data.train_path={task['train']}",
        f"data.valid_path={task['valid']}",
        "data.test_path=null",
        "data.batch_size=16",
        "data.pool_factor=2",
        *TINY_MODEL,
        "model.val_generator.max_len_b=2",
        "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=1",
        "test=false",
        "~logger",
        "~callbacks.lr_monitor",
        # early stopping watches val/bleu, which exists only after a validation (not when max_steps ends an epoch)
        "++callbacks.early_stopping.check_on_train_epoch_end=false",
        "~callbacks.progress_bar",
        "~callbacks.model_summary",
        "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false",
        "++trainer.num_sanity_val_steps=0",
        f"paths.log_dir={log_dir}",
    ]
    if recorder is not None:
        overrides += [
            "+callbacks.step_recorder._target_=tests.tiny_runs.StepRecorder",
            f"+callbacks.step_recorder.path={recorder}",
        ]
    return overrides


def train_here(overrides: list[str], output_dir: Path) -> float | None:
    """Run `src.train.train` in this process, as `python -m src.train <overrides>` would (faster: no start-up)."""
    with hydra_job(overrides, output_dir) as cfg, one_thread():
        return train(cfg)


@contextmanager
def hydra_job(overrides: list[str], output_dir: Path, mode: RunMode = RunMode.RUN) -> Iterator[DictConfig]:
    """The config a Hydra job gets, with Hydra's job state set up as `@hydra.main` does; afterwards the
    process's Hydra state and environment (Lightning's seed variables) are put back."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.mode = mode
    hydra_config, environ = HydraConfig.instance(), dict(os.environ)
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)
    with open_dict(cfg):  # as in Hydra's own run_job: the task sees its config without the `hydra` node
        del cfg["hydra"]
    try:
        yield cfg
    finally:
        hydra_config.cfg = previous
        os.environ.clear()
        os.environ.update(environ)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread: with a tiny model, more threads only wait on each other (and on other tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class StepRecorder(Callback):
    """Appends to the JSON-lines file `path` `{"step", "loss", "sources", "rank"}` after every training
    batch and `{"step", "val_bleu"}` after every validation."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = float(trainer.callback_metrics["train/loss"])
        self._write(
            {
                "step": trainer.global_step,
                "loss": loss,
                "sources": batch.src_text,
                "rank": trainer.global_rank,
            }
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(
                {"step": trainer.global_step, "val_bleu": float(trainer.callback_metrics["val/bleu"])}
            )

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")


class SignalAt(Callback):
    """Sends `signum` to this very process at the end of the training batch that completes step `step`, as
    a user pressing Ctrl-C (SIGINT) or a scheduler (SIGTERM) would."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
            self.step = -1  # once


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Run:
    """`python -m src.train` on the tiny task, for (practically) ever, in the background."""

    def __init__(self, directory: Path, *overrides: str) -> None:
        self.task = write_tiny_task(directory)
        self.recorder = directory / "steps.jsonl"
        self.log_dir = directory / "logs"
        self.output = directory / "output.txt"
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "src.train", *tiny_overrides(self.task, self.log_dir, self.recorder)]
        with self.output.open("w") as output:
            self.process = subprocess.Popen(
                [*command, "trainer.max_epochs=1000", *overrides],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def steps(self) -> list[int]:
        if not self.recorder.exists():
            return []
        return [record["step"] for record in read_records(self.recorder) if "loss" in record]

    def wait_for_step(self, step: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while max(self.steps(), default=0) < step:
            if self.process.poll() is not None:
                pytest.fail(f"the run ended before step {step}:\n{self.output.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no step {step} within {timeout} s")
            time.sleep(0.2)

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=120)
        finally:
            self.process.kill()

    @property
    def last_checkpoint(self) -> Path:
        (path,) = self.log_dir.glob("train/runs/*/checkpoints/last.ckpt")
        return path

    def resume_for(self, steps: int, directory: Path) -> int:
        """Resume from last.ckpt in this process for `steps` more steps; the global step reached."""
        start = read_checkpoint(self.last_checkpoint)["global_step"]
        overrides = [*tiny_overrides(self.task, directory / "logs"), f"ckpt_path={self.last_checkpoint}"]
        train_here([*overrides, f"++trainer.max_steps={start + steps}"], directory / "run")
        return read_checkpoint(directory / "run" / "checkpoints" / "last.ckpt")["global_step"]
