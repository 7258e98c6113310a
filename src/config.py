"""Hydra glue shared by the entry points: resolvers, the config-as-plain-data helpers, the float32 matmul
precision, and building every entry of a config group (callbacks, loggers)."""

import re
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MATMUL_PRECISIONS = ("highest", "high", "medium")


def register_resolvers() -> None:
    """`${project_root:}` resolves to the checkout, so paths do not depend on the working directory."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("job_folder"):
        OmegaConf.register_new_resolver("job_folder", job_folder_name)


def job_folder_name(num: int, overrides: str, max_chars: int = 200) -> str:
    """`${job_folder:...}`: a sweep job's folder, numbered and named by its overrides (TensorBoard names runs
    by folder): `3_attention=luong_general,encoder=conv`. Other characters than ASCII letters, digits and
    `_.,=+-` (`/`, spaces, quotes, braces...) become `_`; names are cut to stay within the 255 bytes a file
    name may have (the number keeps them unique)."""
    safe = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", overrides)[:max_chars]
    return f"{num}_{safe}" if safe else str(num)


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain dicts/lists/scalars (safe in a weights-only checkpoint).

    The `hydra` node is dropped: it only describes the run's folders and launcher.
    """
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return container


def set_matmul_precision(cfg: DictConfig) -> None:
    """Apply the config's `float32_matmul_precision` (`torch.set_float32_matmul_precision`) to this process.

    "medium" lets float32 matrix products use faster internal arithmetic where the hardware has it: TF32
    on CUDA GPUs, oneDNN's bfloat16-based kernels on CPUs with AVX512-BF16 (docs/BENCHMARK.md measures their
    error and speed). Parameters, activations and gradients stay float32 either way.
    """
    precision = cfg.get("float32_matmul_precision", "highest")
    if precision not in MATMUL_PRECISIONS:
        raise ConfigError(
            f"float32_matmul_precision={precision!r} is invalid: use {', '.join(MATMUL_PRECISIONS)} "
            "(highest: plain float32 arithmetic)."
        )
    torch.set_float32_matmul_precision(precision)


def instantiate_each(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group (callbacks, loggers); `null` entries are switched off."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]
