"""The layers of docs/DESIGN.md hold: the inference commands do not import the training data module."""

import subprocess
import sys

from src.config import PROJECT_ROOT

INFERENCE_COMMANDS = (
    "src.evaluate",
    "src.translate",
    "src.visualize",
    "src.align",
    "src.shortlist",
    "src.export",
)


def imported_modules(*modules: str) -> set[str]:
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(result.stdout.split())


def test_inference_commands_do_not_import_the_lightning_data_module():
    loaded = imported_modules(*INFERENCE_COMMANDS)
    assert "src.data.batch" in loaded
    assert "src.data.datamodule" not in loaded


def test_the_benchmark_does_not_import_the_train_entry_point():
    assert "src.train" not in imported_modules("src.bench")
