"""Interrupting a training run: SIGTERM leaves a resumable last.ckpt and a clear exit; a killed run resumes
from its last periodic checkpoint. Each test trains in a subprocess and signals it from here (Ctrl-C is
tested in test_resume.py, in this process, and in test_ddp.py, on two processes)."""

import signal

import pytest

from src.checkpoint import read_checkpoint
from tests.tiny_runs import Run

pytestmark = pytest.mark.slow


def test_sigterm_saves_the_last_step_and_the_run_resumes(tmp_path):
    run = Run(tmp_path)
    run.wait_for_step(2)
    assert run.stop(signal.SIGTERM) == 128 + signal.SIGTERM  # not 0: the job did not finish

    checkpoint = read_checkpoint(run.last_checkpoint)
    assert checkpoint["global_step"] == max(run.steps())  # nothing trained is lost
    assert f"ckpt_path={run.last_checkpoint}" in run.output.read_text()  # how to resume
    assert run.resume_for(2, tmp_path / "resumed") == checkpoint["global_step"] + 2


def test_killed_run_resumes_from_its_last_periodic_checkpoint(tmp_path):
    run = Run(tmp_path, "callbacks.last_checkpoint.every_n_train_steps=2")
    run.wait_for_step(3)  # step 2's checkpoint is written before step 3 starts
    run.stop(signal.SIGKILL)

    step = read_checkpoint(run.last_checkpoint)["global_step"]
    assert step >= 2 and step % 2 == 0  # every 2 steps (and after validation, at the epoch's 6th)
    assert run.resume_for(2, tmp_path / "resumed") == step + 2
