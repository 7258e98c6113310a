"""Random number generator states in checkpoints: a resumed run draws what an uninterrupted one would."""

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RngState(Callback):
    """Saves the states of Python's, NumPy's and torch's (CPU and CUDA) generators in every checkpoint, and
    restores them when a resumed run starts training: dropout masks and teacher-forcing coin flips then go on
    as in the uninterrupted run.

    They are restored just before the first training batch rather than when the checkpoint is read, so that
    what runs in between (building the model, starting the DataLoaders) cannot shift them. Under DDP a
    checkpoint holds rank 0's states and every rank restores those: a resumed multi-process run is the same
    as an uninterrupted one statistically, not bit for bit.
    """

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # a checkpoint written before training resumed (e.g. on an interrupt) keeps the states it resumed from
        return self._to_restore or rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._to_restore is not None:
            set_rng_states(self._to_restore)
            self._to_restore = None


def rng_states() -> dict[str, Any]:
    """The global generators' states as tensors and plain data (a weights-only checkpoint can hold them)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
        "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    cuda_states = states["torch.cuda"]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
