"""Shared test helpers: composing the real Hydra configs, and running the entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src.config import PROJECT_ROOT, register_resolvers

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
        "train": write_tsv(tmp_path / "train.tsv", pairs(2000)),
        "valid": write_tsv(tmp_path / "valid.tsv", pairs(100)),
        "test": write_tsv(tmp_path / "test.tsv", pairs(100)),
    }
