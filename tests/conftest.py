"""Shared test helpers: composing the real Hydra configs, and running the entry points."""

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.config import PROJECT_ROOT, register_resolvers, to_plain

register_resolvers()
CONF_DIR = PROJECT_ROOT / "conf"


def compose_config(config_name: str = "train", overrides: list[str] | None = None) -> DictConfig:
    """The config a command line with these overrides would build (without running it)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [])


def run_entry(
    module: str, *overrides: str, cwd: Path | None = None, timeout: int = 600, stdin: str | None = None
):
    """Run `python -m <module> <overrides>` as a user would; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd or PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture
def reverse_task(tmp_path: Path) -> dict[str, Path]:
    return write_reverse_task(tmp_path)


def write_reverse_task(directory: Path) -> dict[str, Path]:
    """A synthetic task: reverse sequences of 3-6 digits. Learnable to BLEU ~100 in a minute on a CPU."""
    import random

    rng = random.Random(0)

    def pairs(n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            digits = [str(rng.randrange(10)) for _ in range(rng.randint(3, 6))]
            out.append((" ".join(digits), " ".join(reversed(digits))))
        return out

    return {
        "train": write_tsv(directory / "train.tsv", pairs(2000)),
        "valid": write_tsv(directory / "valid.tsv", pairs(100)),
        "test": write_tsv(directory / "test.tsv", pairs(100)),
    }


# a model small enough to train in seconds: what the tests of the checkpoint commands need
TINY_MODEL = (
    "model.net.embedding_size=16",
    "encoder.hidden_size=32",
    "attention.hidden_size=32",
    "decoder.hidden_size=32",
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model trained once per session on the reverse task (validation BLEU ~20).

    {"ckpt": its best.ckpt, "train" / "valid" / "test": the data it was trained on}.
    """
    directory = tmp_path_factory.mktemp("tiny_checkpoint")
    return train_tiny_checkpoint(directory, TINY_MODEL)


@pytest.fixture(autouse=True)
def float32_matmuls():
    """Every test computes in plain float32 (the default) unless it sets another precision itself, and
    leaves the process as it found it: on AMX CPUs `medium` changes products by ~4e-3, enough to break
    every "step-wise equals all-at-once" comparison."""
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """Torch on one thread, here and in the commands a test starts: tiny models gain nothing from a
    second one, and on a busy machine its spin-waits make small batches many times slower."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# a tiny Transformer: 2 layers of 2 heads in the encoder's and the decoder's self-attention and in the
# multi-head cross-attention (the tests of head gates, importance, pruning and the attention explorer)
TINY_TRANSFORMER = (
    "encoder=transformer",
    "decoder=transformer",
    "attention=multihead",
    "model.net.embedding_size=16",
    *(
        f"{part}.{key}={value}"
        for part in ("encoder", "decoder")
        for key, value in {"d_model": 16, "num_layers": 2, "num_heads": 2, "d_ff": 32}.items()
    ),
    "attention.hidden_size=16",
    "attention.num_heads=2",
)


@pytest.fixture(scope="session")
def tiny_transformer_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A `TINY_TRANSFORMER` trained for 3 epochs on the reverse task: {"ckpt": its best.ckpt, "train" /
    "valid" / "test": the data}."""
    directory = tmp_path_factory.mktemp("tiny_transformer_checkpoint")
    return train_tiny_checkpoint(directory, TINY_TRANSFORMER)


def train_tiny_checkpoint(directory: Path, model: tuple[str, ...]) -> dict[str, Path]:
    """Train `model` (overrides) for 3 epochs on the reverse task in `directory`, as a user would.

    {"ckpt": its best.ckpt, "train" / "valid" / "test": the data it was trained on}.
    """
    task = write_reverse_task(directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # tiny matrices: more threads only add overhead
        result = run_entry(
            "src.train",
            f"data.train_path={task['train']}",
            f"data.valid_path={task['valid']}",
            f"data.test_path={task['test']}",
            *model,
            "model.optimizer.lr=0.01",
            "trainer.max_epochs=3",
            "trainer.accelerator=cpu",
            "test=false",
            "~logger",
            "~callbacks.lr_monitor",
            "~callbacks.progress_bar",
            "+trainer.enable_progress_bar=false",
            f"paths.log_dir={directory / 'outputs'}",
        )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (ckpt,) = (directory / "outputs").glob("train/runs/*/checkpoints/best.ckpt")
    return {"ckpt": ckpt, **task}


def one_step_checkpoint(data: dict[str, Path], directory: Path, *overrides: str) -> Path:
    """A checkpoint written after one training step: as `src.train` writes it, in a second."""
    cfg = compose_config(
        "train",
        [
            f"data.train_path={data['train']}",
            f"data.valid_path={data['valid']}",
            "model.net.embedding_size=8",
            f"paths.output_dir={directory}",
            *overrides,
        ],
    )
    torch.manual_seed(0)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = instantiate(cfg.model, codec=datamodule.codec)
    module.run_config = to_plain(cfg)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    trainer.save_checkpoint(directory / "model.ckpt")
    return directory / "model.ckpt"
