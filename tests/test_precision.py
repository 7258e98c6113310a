"""Mixed precision: bf16-mixed trains on the CPU; with fp16 gradient scaling, clipping sees unscaled gradients.

fp16 AMP needs a GPU in normal use (Lightning turns `16-mixed` on the CPU into bf16); here Lightning's own
`MixedPrecision` plugin runs fp16 autocast with a CPU `GradScaler`, which takes the same code path: scale
the loss, backward, unscale, `on_before_optimizer_step`, clip, step.
"""

import functools
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision

from src.data.datamodule import TranslationDataModule
from src.hardware import cpu_supports_bf16
from tests.conftest import compose_config
from tests.tiny_runs import one_thread, read_records, tiny_overrides, train_here, write_tiny_task

# oneDNN has no fp16 LSTM on the CPU: a tiny Transformer, without dropout so both runs see one network
TRANSFORMER_SIZES = {"d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32, "dropout": 0}
FP16_CPU_MODEL = (
    "encoder=transformer",
    "attention=multihead",
    "decoder=transformer",
    "model.net.embedding_size=16",
    *(f"{part}.{key}={value}" for part in ("encoder", "decoder") for key, value in TRANSFORMER_SIZES.items()),
    "attention.hidden_size=16",
    "model.net.embedding_dropout=0",
)
CLIP = 0.01  # far below the tiny model's gradient norms: every step is clipped
SCALE = 2.0**10


class RecordingSGD(torch.optim.SGD):
    """SGD that records the norm of the gradient it steps with: after unscaling and clipping."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norms: list[float] = []

    def step(self, closure=None):
        loss = None
        if closure is not None:  # without AMP, Lightning's closure runs backward, hooks and clipping
            with torch.enable_grad():
                loss = closure()
        self.norms.append(total_norm(p for group in self.param_groups for p in group["params"]))
        super().step()
        return loss


class NormsBeforeClipping(Callback):
    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        self.norms.append(total_norm(pl_module.parameters()))


def total_norm(parameters) -> float:
    return float(
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
    )


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_task(tmp_path_factory.mktemp("task"))


@pytest.fixture
def data(task: dict[str, Path]) -> TranslationDataModule:
    cfg = compose_config(overrides=[f"data.train_path={task['train']}", f"data.valid_path={task['valid']}"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


def clipped_run(data: TranslationDataModule, precision_plugin: MixedPrecision | None) -> tuple[list, list]:
    """Three clipped steps; the gradient norms before clipping and those the optimizer steps with."""
    cfg = compose_config(overrides=list(FP16_CPU_MODEL))
    torch.manual_seed(0)
    module = instantiate(cfg.model, codec=data.codec, optimizer=functools.partial(RecordingSGD, lr=0.1))
    before = NormsBeforeClipping()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        gradient_clip_val=CLIP,
        plugins=[precision_plugin] if precision_plugin else None,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[before],
    )
    with one_thread():
        trainer.fit(module, datamodule=data)
    return before.norms, trainer.optimizers[0].norms


def test_fp16_gradients_are_unscaled_before_clipping(data):
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    before_16, stepped_16 = clipped_run(data, MixedPrecision("16-mixed", "cpu", scaler))
    before_32, _ = clipped_run(data, None)
    # the first step of both runs sees the same weights and batch: the same gradient, not SCALE times it
    assert before_16[0] == pytest.approx(before_32[0], rel=0.05)
    assert min(before_16) > 10 * CLIP
    # clipped to CLIP exactly: clipping the scaled gradient would leave CLIP / SCALE after unscaling
    assert stepped_16 == pytest.approx([CLIP] * 3, rel=1e-3)


@pytest.mark.skipif(
    not cpu_supports_bf16(), reason="this CPU has no native bf16 (test_hardware.py checks the error)"
)
def test_bf16_mixed_trains_on_the_cpu(task, tmp_path):
    recorder = tmp_path / "steps.jsonl"
    overrides = [*tiny_overrides(task, tmp_path / "logs", recorder), "trainer.precision=bf16-mixed"]
    train_here([*overrides, "++trainer.max_steps=30", "model.optimizer.lr=0.01"], tmp_path / "run")
    losses = [record["loss"] for record in read_records(recorder) if "loss" in record]
    assert len(losses) == 30
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])  # it learns (an untrained model stays near 2.6)
