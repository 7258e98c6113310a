"""`scripts/study_queue.sh`: the study's runs one at a time, each tested and archived when it completes, and
skipped once archived (a new session with no checkpoints left goes on with the next row)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.config import PROJECT_ROOT
from tests.conftest import TINY_MODEL, write_reverse_task

pytestmark = pytest.mark.slow


def run_queue(jobs: Path, runs: Path, archive: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # this python first
        "PYTHONPATH": str(PROJECT_ROOT),
        "OMP_NUM_THREADS": "1",
        "STUDY_RUNS": str(runs),
        "STUDY_ARCHIVE": str(archive),
        "STUDY_BEAM": "2",
        "STUDY_ATTRIBUTION": "0",
    }
    script = PROJECT_ROOT / "scripts" / "study_queue.sh"
    result = subprocess.run(
        ["bash", str(script), str(jobs)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_queue_trains_tests_and_archives_each_run_then_skips_it(tmp_path):
    task = write_reverse_task(tmp_path)
    overrides = " ".join(
        [
            f"data.train_path={task['train']}",
            f"data.valid_path={task['valid']}",
            f"data.test_path={task['test']}",
            *TINY_MODEL,
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=10",
            "seed=1",
        ]
    )
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"# a comment\nm30k_tiny_s1 {overrides}\n", encoding="utf-8")
    runs, archive = tmp_path / "runs", tmp_path / "archive"
    log = run_queue(jobs, runs, archive)
    assert "start m30k_tiny_s1" in log and "end m30k_tiny_s1 rc=0" in log and "all jobs completed" in log
    assert "test and archive m30k_tiny_s1" in log
    archived = archive / "multi30k" / "m30k_tiny_s1"  # m30k_* runs go to the multi30k archive
    assert (archived / "study" / "beam2.json.gz").is_file() and (archived / "summary.json").is_file()
    assert not list(archived.rglob("*.ckpt"))
    # a completed run whose archive is missing (testing it failed, say) is tested again, not trained again
    shutil.rmtree(archived)
    log = run_queue(jobs, runs, archive)
    assert "start" not in log and "test and archive m30k_tiny_s1" in log and archived.is_dir()
    # a later session: the checkpoints are gone, the archive was committed; the run is not trained again
    (runs / "m30k_tiny_s1" / "summary.json").unlink()
    log = run_queue(jobs, runs, archive)
    assert "start" not in log and "all jobs completed" in log
