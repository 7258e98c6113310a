"""Faults lose nothing: a NaN/inf loss stops the run (or skips the batch) and keeps the checkpoints already
written; a checkpoint write that fails half-way leaves the previous checkpoint intact.

Tiny real runs, in process, built from the real configs (callbacks included), with a fault injected into
the loss. SIGINT/SIGTERM, SIGKILL-resume and multirun isolation are tested by their owners (see
docs/RELIABILITY.md).
"""

import math
import random
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from src.checkpoint import read_checkpoint
from src.config import instantiate_each
from src.errors import TrainingError
from src.lit_module import TranslationModule
from tests.conftest import TINY_MODEL, compose_config, run_entry, write_tsv

STEPS_PER_EPOCH = 4  # 64 training pairs, batches of 16


def reverse_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    digits = [[str(rng.randrange(10)) for _ in range(rng.randint(3, 5))] for _ in range(n)]
    return [(" ".join(d), " ".join(reversed(d))) for d in digits]


def data_overrides(tmp_path: Path) -> list[str]:
    train = write_tsv(tmp_path / "train.tsv", reverse_pairs(64, seed=0))
    valid = write_tsv(tmp_path / "valid.tsv", reverse_pairs(16, seed=1))
    return [
        f"data.train_path={train}",
        f"data.valid_path={valid}",
        "data.test_path=null",
        "data.batch_size=16",
    ]


def tiny_run(tmp_path: Path, *overrides: str):
    """(trainer, module, datamodule) of a tiny run writing its checkpoints to tmp_path/checkpoints."""
    checkpoints = tmp_path / "checkpoints"
    cfg = compose_config(
        overrides=[
            *data_overrides(tmp_path),
            *TINY_MODEL,
            "trainer.accelerator=cpu",
            f"trainer.default_root_dir={tmp_path}",
            "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
            "~logger",
            "~callbacks.lr_monitor",
            "~callbacks.progress_bar",
            "~callbacks.model_summary",
            f"callbacks.model_checkpoint.dirpath={checkpoints}",
            f"callbacks.last_checkpoint.dirpath={checkpoints}",
            "callbacks.last_checkpoint.every_n_train_steps=2",
            *overrides,
        ]
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = instantiate(cfg.model, codec=datamodule.codec)
    trainer = instantiate(cfg.trainer, callbacks=instantiate_each(cfg.callbacks), logger=False)
    return trainer, module, datamodule


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def inject_nan(module: TranslationModule, at_calls: set[int], before=None) -> list[dict]:
    """Make the training loss NaN on the given training-step calls (1-based); returns what `before` saw."""
    original, calls, seen = module._loss, [0], []

    def faulty(batch, teacher_forcing_ratio):
        loss, nll, n_tokens = original(batch, teacher_forcing_ratio)
        if not module.training:
            return loss, nll, n_tokens
        calls[0] += 1
        if calls[0] not in at_calls:
            return loss, nll, n_tokens
        if before is not None:
            seen.append(before())
        return loss * float("nan"), nll, n_tokens

    module._loss = faulty
    return seen


def test_nan_loss_stops_the_run_and_keeps_the_checkpoints(tmp_path):
    trainer, module, datamodule = tiny_run(tmp_path, "trainer.max_epochs=3")
    fault = STEPS_PER_EPOCH + 3  # epoch 1, after best.ckpt and last.ckpt were written
    seen = inject_nan(module, {fault}, before=lambda: snapshot(tmp_path / "checkpoints"))
    with pytest.raises(TrainingError) as err:
        trainer.fit(module, datamodule=datamodule)
    assert str(err.value).startswith(
        f"Training diverged: the loss NaN or infinite at step {fault - 1} (epoch 1, batch 2). The run stopped; "
        "the checkpoints already written are unchanged."
    )
    assert "model.nonfinite_loss=skip" in str(err.value)
    (before,) = seen
    assert set(before) == {"best.ckpt", "last.ckpt"}
    assert (
        snapshot(tmp_path / "checkpoints") == before
    )  # same files, same bytes: nothing lost, nothing half-written
    assert all(
        math.isfinite(v)
        for v in read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["state_dict"][
            "net.output_layer.weight"
        ]
        .flatten()
        .tolist()
    )


def test_nan_loss_with_skip_skips_the_batch_counts_and_logs_it(tmp_path):
    trainer, module, datamodule = tiny_run(tmp_path, "trainer.max_epochs=2", "model.nonfinite_loss=skip")
    inject_nan(module, {2, STEPS_PER_EPOCH + 1})
    trainer.fit(module, datamodule=datamodule)
    assert module.skipped_batches == 2
    assert trainer.callback_metrics["train/skipped_batches"] == 2
    # a NaN loss that reached backward() would have made every weight NaN
    assert all(torch.isfinite(p).all() for p in module.parameters())
    saved = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert saved["seq2seq_lab"]["skipped_batches"] == 2


def test_skip_still_stops_when_the_weights_themselves_are_nan(tmp_path):
    trainer, module, datamodule = tiny_run(tmp_path, "trainer.max_epochs=1", "model.nonfinite_loss=skip")

    def poison_weights() -> None:
        with torch.no_grad():
            module.net.output_layer.bias.fill_(float("nan"))

    inject_nan(module, {2}, before=poison_weights)
    with pytest.raises(
        TrainingError, match="the loss and the weights themselves are NaN or infinite at step 1"
    ):
        trainer.fit(module, datamodule=datamodule)


def test_failed_checkpoint_write_with_a_real_trainer_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer, module, datamodule = tiny_run(tmp_path, "trainer.max_epochs=1")
    trainer.fit(module, datamodule=datamodule)
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = snapshot(last.parent)

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"the first bytes of a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        trainer.save_checkpoint(last)
    monkeypatch.undo()
    assert snapshot(last.parent) == before  # no half-written file, no temporary file left behind
    assert read_checkpoint(last)["global_step"] == STEPS_PER_EPOCH


@pytest.mark.slow
def test_cli_diverging_run_exits_2_with_the_message(tmp_path):
    # weights drawn from [-1e38, 1e38] overflow float32 in the first matrix product: a real NaN loss
    result = run_entry(
        "src.train",
        *data_overrides(tmp_path),
        *TINY_MODEL,
        "model.net.init_range=1e38",
        "trainer.max_epochs=1",
        "~logger",
        "~callbacks.lr_monitor",
        "~callbacks.progress_bar",
        f"paths.log_dir={tmp_path / 'outputs'}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Training diverged: the loss NaN or infinite at step 0 (epoch 0, batch 0)." in output
    assert "Traceback" not in output
