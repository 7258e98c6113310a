"""What a job adapts to the Hydra launcher that runs it."""

import logging

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

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
