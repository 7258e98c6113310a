"""Precision on every CPU family: the default is plain float32; `medium` is used when asked; bf16 on a CPU
without native bf16 is refused at start-up with the option, the CPU found and the fix.

The capability is forced (monkeypatched) so that both paths run on any machine; which family this machine
really is decides only `tests/test_precision.py::test_bf16_mixed_trains_on_the_cpu`.
"""

import logging

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from src import hardware
from src.errors import ConfigError
from src.schema import validate_train_config
from tests.conftest import compose_config
from tests.tiny_runs import tiny_overrides, train_here, write_tiny_task


class MatmulPrecisionSeen(Callback):
    """Records the float32 matmul precision in force while the model trains."""

    seen: list[str] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx
    ) -> None:
        MatmulPrecisionSeen.seen.append(torch.get_float32_matmul_precision())


def without_bf16(monkeypatch: pytest.MonkeyPatch, family: str = "avx2") -> None:
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(hardware, "cpu_family", lambda: family)


@pytest.mark.parametrize("config_name", ["train", "evaluate", "translate", "visualize"])
def test_default_float32_matmul_precision_is_plain_float32(config_name):
    overrides = [] if config_name == "train" else ["ckpt_path=x.ckpt"]
    assert compose_config(config_name, overrides).float32_matmul_precision == "highest"


@pytest.mark.slow
def test_a_run_asked_for_medium_trains_with_medium(tmp_path):
    MatmulPrecisionSeen.seen = []
    task = write_tiny_task(tmp_path)
    overrides = [
        *tiny_overrides(task, tmp_path / "logs"),
        "float32_matmul_precision=medium",
        "++trainer.max_steps=2",
        "+callbacks.precision_seen._target_=tests.test_hardware.MatmulPrecisionSeen",
    ]
    train_here(overrides, tmp_path / "run")
    assert MatmulPrecisionSeen.seen == ["medium", "medium"]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "bf16-true"])
def test_bf16_on_a_cpu_without_it_is_refused_with_the_fix(monkeypatch, precision):
    without_bf16(monkeypatch)
    cfg = compose_config(overrides=[f"trainer.precision={precision}", "trainer.accelerator=cpu"])
    with pytest.raises(ConfigError) as err:
        validate_train_config(cfg)
    message = str(err.value)
    assert f"trainer.precision={precision}" in message
    assert "this CPU has AVX2 only" in message
    assert "trainer.precision=32-true" in message


def test_bf16_refusal_comes_before_the_data_is_read(monkeypatch, tmp_path, caplog):
    without_bf16(monkeypatch)
    task = write_tiny_task(tmp_path)
    overrides = [*tiny_overrides(task, tmp_path / "logs"), "trainer.precision=bf16-mixed"]
    with caplog.at_level(logging.INFO, logger="seq2seq-lab"), pytest.raises(ConfigError, match="AVX2"):
        train_here(overrides, tmp_path / "run")
    assert "Reading the data" not in caplog.text


def test_bf16_is_accepted_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: True)
    validate_train_config(
        compose_config(overrides=["trainer.precision=bf16-mixed", "trainer.accelerator=cpu"])
    )


def test_float32_is_accepted_on_every_cpu(monkeypatch):
    without_bf16(monkeypatch)
    validate_train_config(compose_config(overrides=["trainer.accelerator=cpu"]))


def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla V100")
    with pytest.raises(ConfigError, match="Tesla V100 has none. Use trainer.precision=16-mixed"):
        hardware.check_precision("bf16-mixed", "auto")
    hardware.check_precision("16-mixed", "gpu")  # fp16 with gradient scaling needs no bf16


@pytest.mark.parametrize(
    ("flags", "capability", "family"),
    [
        ({"amx_bf16": True, "avx512_bf16": True, "avx2": True}, "AVX512", "amx"),
        ({"amx_bf16": False, "avx512_bf16": True, "avx2": True}, "AVX512", "avx512_bf16"),
        ({"amx_bf16": False, "avx512_bf16": False, "avx2": True}, "AVX512", "avx512"),
        ({"amx_bf16": False, "avx512_bf16": False, "avx2": True}, "AVX2", "avx2"),
    ],
)
def test_cpu_family_from_the_flags_torch_detects(monkeypatch, flags, capability, family):
    monkeypatch.setattr(hardware, "cpu_capabilities", lambda: flags)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert hardware.cpu_family() == family
