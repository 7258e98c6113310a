"""Gradient accumulation normalises by the target tokens of the whole window: accumulating 4 batches of B
sentences gives the gradient of one batch of 4B (dropout off, so both see the same network)."""

import copy
import functools

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from src.data.batch import Batch, collate
from src.data.datamodule import TranslationDataModule
from src.lit_module import TranslationModule
from tests.conftest import TINY_MODEL, compose_config
from tests.tiny_runs import one_thread, write_tiny_task

NO_DROPOUT = ("encoder.dropout=0", "decoder.dropout=0", "model.net.embedding_dropout=0")


class GradientCapture(Callback):
    """The gradient of every optimizer step, as the callbacks (and gradient clipping) get it."""

    def __init__(self) -> None:
        self.gradients: list[torch.Tensor] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        self.gradients.append(flat_gradient(pl_module))


def flat_gradient(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in module.parameters()]
    )


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TranslationDataModule:
    task = write_tiny_task(tmp_path_factory.mktemp("task"))
    cfg = compose_config(overrides=[f"data.train_path={task['train']}", f"data.valid_path={task['valid']}"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule


@pytest.fixture
def module(data: TranslationDataModule) -> TranslationModule:
    cfg = compose_config(overrides=[*TINY_MODEL, *NO_DROPOUT])
    torch.manual_seed(0)
    # SGD at lr 0: steps leave the weights alone, so every window's gradient is taken at the same point
    return instantiate(cfg.model, codec=data.codec, optimizer=functools.partial(torch.optim.SGD, lr=0.0))


def batches(data: TranslationDataModule, sizes: list[int]) -> list[Batch]:
    """Batches of consecutive training examples; their target token counts differ from batch to batch."""
    examples = [data.datasets["train"][i] for i in range(sum(sizes))]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [collate(examples[start : start + size]) for start, size in zip(starts, sizes, strict=True)]


def one_batch(data: TranslationDataModule, size: int) -> Batch:
    (batch,) = batches(data, [size])
    return batch


def lightning_gradients(
    module: TranslationModule, train_batches: list[Batch], accumulate: int
) -> list[torch.Tensor]:
    """The gradient of each optimizer step of one epoch over `train_batches`."""
    capture = GradientCapture()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        accumulate_grad_batches=accumulate,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[capture],
    )
    trainer.fit(
        module, train_dataloaders=DataLoader(train_batches, batch_size=None, collate_fn=lambda batch: batch)
    )
    return capture.gradients


def per_token_gradient(module: TranslationModule, batch: Batch) -> torch.Tensor:
    """The gradient of the batch's loss per target token, computed by hand."""
    module = copy.deepcopy(module)
    loss, _, _ = module._loss(batch, teacher_forcing_ratio=1.0)
    loss.backward()
    return flat_gradient(module)


def test_accumulating_4_batches_gives_the_gradient_of_one_batch_of_4b(data, module):
    small = batches(data, [4, 4, 4, 4])
    whole = per_token_gradient(module, one_batch(data, 16))
    naive = torch.stack([per_token_gradient(module, batch) for batch in small]).mean(dim=0)
    assert not torch.allclose(naive, whole, rtol=1e-3)  # the batches' token counts differ: averaging is wrong

    (accumulated,) = lightning_gradients(module, small, accumulate=4)
    assert torch.allclose(accumulated, whole, rtol=1e-5, atol=1e-8)


def test_without_accumulation_the_gradient_is_per_token_of_the_batch(data, module):
    batch = one_batch(data, 8)
    (gradient,) = lightning_gradients(copy.deepcopy(module), [batch], accumulate=1)
    assert torch.allclose(gradient, per_token_gradient(module, batch), rtol=1e-5, atol=1e-8)


def test_the_last_partial_window_of_an_epoch_is_normalised_by_its_own_tokens(data, module):
    three = batches(data, [4, 4, 4])
    first, last = lightning_gradients(copy.deepcopy(module), three, accumulate=2)  # windows [1, 2] and [3]
    assert torch.allclose(last, per_token_gradient(module, three[2]), rtol=1e-5, atol=1e-8)
    assert torch.allclose(first, per_token_gradient(module, one_batch(data, 8)), rtol=1e-5, atol=1e-8)


def test_logged_training_loss_stays_per_token(data, module):
    batch = one_batch(data, 8)
    lightning_gradients(module, [batch], accumulate=1)
    expected, _, _ = module._loss(batch, teacher_forcing_ratio=1.0)
    assert float(module.trainer.callback_metrics["train/loss"]) == pytest.approx(float(expected), rel=1e-5)
