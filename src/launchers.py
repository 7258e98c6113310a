"""What a job adapts to the Hydra launcher that runs it: DataLoader workers, and torch threads (`threads`)."""

import logging
import os
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from src.checks import is_int
from src.errors import ConfigError

log = logging.getLogger("seq2seq-lab")


def fit_to_launcher(cfg: DictConfig, launcher_target: str | None = None) -> None:
    """Under `hydra/launcher=joblib`, train without DataLoader worker processes (`data.num_workers=0`).

    joblib runs each job in a worker process that cannot start DataLoader workers: loky's workers (joblib's
    default backend) make `loky` the default start method, which torch's DataLoader cannot use ("'Process'
    object has no attribute 'env'"), and the `multiprocessing` backend's workers are daemonic ("daemonic
    processes are not allowed to have children"). The jobs themselves already use the cores in parallel.
    `launcher_target` defaults to the `_target_` of the running job's `hydra.launcher`.
    """
    if launcher_target is None:
        launcher_target = HydraConfig.get().launcher._target_ if HydraConfig.initialized() else ""
    workers = cfg.data.get("num_workers", 0)
    if "JoblibLauncher" in launcher_target and workers:
        log.warning(
            "data.num_workers=%s is not possible under hydra/launcher=joblib (its jobs run in processes that "
            "cannot start DataLoader workers); this job loads data in the main process (data.num_workers=0). "
            "To use DataLoader workers, run the sweep with the basic or a submitit launcher.",
            workers,
        )
        cfg.data.num_workers = 0


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def concurrent_jobs(launcher: Any | None = None) -> int:
    """How many jobs of this sweep run at once on this machine: `hydra.launcher.n_jobs` under joblib (-1:
    one per core, as joblib counts), else 1 (the basic launcher runs one after the other; SLURM gives each
    job its own cores)."""
    if launcher is None:
        launcher = HydraConfig.get().launcher if HydraConfig.initialized() else {}
    if "JoblibLauncher" not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = launcher.get("n_jobs") or 1
    return available_cores() if n_jobs < 0 else int(n_jobs)


def job_threads(threads: Any, launcher: Any | None = None) -> int:
    """torch's intra-op threads for this job: `threads` when it is an integer; `auto`: OMP_NUM_THREADS when
    set, else the available cores divided by the jobs that run at once (at least 1). Oversubscribed cores
    are what make two jobs on one machine 10x slower instead of 2x."""
    if threads == "auto":
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            return max(1, int(os.environ["OMP_NUM_THREADS"]))
        return max(1, available_cores() // concurrent_jobs(launcher))
    if is_int(threads, 1):
        return threads
    raise ConfigError(f"threads={threads!r} is invalid: use auto or an integer >= 1.")


def set_job_threads(cfg: DictConfig) -> int:
    """Apply `job_threads(cfg.threads)` to torch (and to the DataLoader workers, through the environment)."""
    threads = job_threads(cfg.get("threads", "auto"))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by processes this job starts
    log.info("torch threads: %d (threads=%s)", threads, cfg.get("threads", "auto"))
    return threads
