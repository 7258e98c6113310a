"""The thread policy: `threads=auto` shares the cores among the jobs that run at once."""

import pytest
import torch

from src import launchers
from src.errors import ConfigError
from src.launchers import concurrent_jobs, job_threads, set_job_threads

JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}
BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(launchers, "available_cores", lambda: 4)


def test_auto_divides_the_cores_among_the_jobs_of_a_joblib_sweep(four_cores):
    assert job_threads("auto", JOBLIB) == 2
    assert job_threads("auto", {**JOBLIB, "n_jobs": 8}) == 1  # never 0
    assert job_threads("auto", {**JOBLIB, "n_jobs": -1}) == 1  # joblib's -1: a job per core
    assert job_threads("auto", BASIC) == 4  # jobs run one after the other


def test_auto_respects_omp_num_threads(four_cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert job_threads("auto", JOBLIB) == 3


def test_an_integer_is_taken_as_it_is_and_anything_else_is_an_error(four_cores):
    assert job_threads(3, JOBLIB) == 3
    for bad in (0, "two", 1.5, True):
        with pytest.raises(ConfigError, match="threads=.* is invalid: use auto or an integer >= 1"):
            job_threads(bad, BASIC)


def test_concurrent_jobs_outside_a_sweep_is_one():
    assert concurrent_jobs({}) == 1


def test_set_job_threads_applies_to_torch_and_to_child_processes(monkeypatch):
    from omegaconf import OmegaConf

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))
    try:
        assert set_job_threads(OmegaConf.create({"threads": 1})) == 1
        assert torch.get_num_threads() == 1
        import os

        assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, {"GOMP_SPINCOUNT": "10000", "OMP_WAIT_POLICY": None}),  # the package bounds the spin
        ({"GOMP_SPINCOUNT": "300000"}, {"GOMP_SPINCOUNT": "300000", "OMP_WAIT_POLICY": None}),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"}),
    ],
)
def test_importing_the_package_bounds_openmp_spinning_unless_the_user_chose(environment, expected):
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    names = sorted(expected)
    show = f"import json, os, src; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    out = subprocess.run(
        [sys.executable, "-c", show], env={**env, **environment}, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == expected
