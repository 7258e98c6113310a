"""Hydra glue shared by the entry points: resolvers and the config-as-plain-data helpers."""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def register_resolvers() -> None:
    """`${project_root:}` resolves to the checkout, so paths do not depend on the working directory."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain dicts/lists/scalars (safe in a weights-only checkpoint).

    The `hydra` node is dropped: it only describes the run's folders and launcher.
    """
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return container
