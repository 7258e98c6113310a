"""What the processor can do for reduced-precision arithmetic, and the start-up check of `trainer.precision`.

Three CPU families behave differently (docs/BENCHMARK.md, "Precision on each hardware family"):

| family | `float32_matmul_precision=medium` | `trainer.precision=bf16-mixed` |
| --- | --- | --- |
| AVX2 only | no faster kernel: plain float32 | refused here: oneDNN has no bf16 LSTM/GRU kernel, and every other bf16 product is emulated (slower than float32) |
| AVX512-BF16 | oneDNN's bf16-based float32 products (several passes): float32 within ~1e-6 | native bf16 |
| AMX | single-pass bf16 products: ~4e-3 relative error | native bf16 |

torch answers "is there native bf16 on this CPU" only through private functions (`torch.ops.mkldnn.
_is_mkldnn_bf16_supported`, `torch.cpu.get_capabilities`); this module is the one place that calls them,
with a fallback to the public `torch.backends.cpu.get_cpu_capability()` if a later torch renames them.
"""

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from src.errors import ConfigError

# trainer.precision values that compute in bfloat16 on a CPU (Lightning runs 16-mixed as bf16-mixed there)
_BF16_ON_CPU = ("bf16-mixed", "bf16-true", "bf16", "16-mixed", "16")
_BF16_ON_CUDA = ("bf16-mixed", "bf16-true", "bf16")


def cpu_capabilities() -> dict[str, bool]:
    """The instruction-set flags torch detected (`avx2`, `avx512_bf16`, `amx_bf16`, ...); {} if unknown."""
    try:
        return {key: value for key, value in torch.cpu.get_capabilities().items() if isinstance(value, bool)}
    except AttributeError:  # a torch without the private query
        return {}


def cpu_family() -> str:
    """`amx`, `avx512_bf16`, `avx512`, `avx2` or torch's own capability name (`DEFAULT`, `VSX`, ...)."""
    flags = cpu_capabilities()
    if flags.get("amx_bf16"):
        return "amx"
    if flags.get("avx512_bf16"):
        return "avx512_bf16"
    return torch.backends.cpu.get_cpu_capability().lower()


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels here (AVX512-BF16 or AMX), the LSTM and GRU included."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return cpu_family() in ("amx", "avx512_bf16")


def runs_on_cuda(accelerator: str) -> bool:
    """Whether `trainer.accelerator` puts training on a CUDA GPU (`auto` does when one is visible)."""
    return accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())


def check_precision(precision: str, accelerator: str) -> None:
    """Refuse, before any data is read, a `trainer.precision` that this hardware cannot compute.

    Raises `ConfigError` naming the option, what was found, and what to use instead: never a oneDNN
    "could not create a primitive descriptor" traceback in the middle of the first training step.
    """
    precision = str(precision)
    if runs_on_cuda(accelerator):
        if precision in _BF16_ON_CUDA and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"trainer.precision={precision} needs a GPU with bfloat16 (compute capability 8.0 or newer), "
                f"but {torch.cuda.get_device_name()} has none. Use trainer.precision=16-mixed (float16 with "
                "gradient scaling) or 32-true."
            )
        return
    if precision in _BF16_ON_CPU and not cpu_supports_bf16():
        as_bf16 = " (Lightning runs 16-mixed as bf16-mixed on a CPU)" if precision.startswith("16") else ""
        raise ConfigError(
            f"trainer.precision={precision}{as_bf16} needs native bfloat16 arithmetic on the CPU (AVX512-BF16 "
            f"or AMX), but this CPU has {cpu_family().upper()} only: oneDNN has no bfloat16 LSTM/GRU kernel "
            "here, and every other bfloat16 product is emulated, slower than float32. Use "
            "trainer.precision=32-true (the default) on this machine, or bf16-mixed on a CPU with AVX512-BF16 "
            "or AMX, or on a GPU."
        )


def machine() -> dict[str, Any]:
    """Where and with what code a number is measured: the date, the CPU and its family, the cores and torch
    threads, the versions, and the project's git commit (`+changes` when the working tree differs from it).
    The benchmark's report and every run's summary.json record it."""
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_family": cpu_family(),  # amx, avx512_bf16, avx512, avx2: what medium and bf16 do depends on it
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": source_commit(),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_commit() -> str | None:
    """The project's git commit (short), with `+changes` if tracked files differ from it; None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        changed = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--"], capture_output=True,
                                 timeout=10).returncode != 0  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+changes" if changed else commit
