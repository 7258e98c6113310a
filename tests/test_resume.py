"""Exact resume and reproducibility: a run stopped and resumed from last.ckpt logs, step for step, what an
uninterrupted run logs (dropout on: the random generators are restored too); the same seed gives the same
metrics."""

import json
import signal
from pathlib import Path

import pytest
from hydra.utils import instantiate

from tests.conftest import compose_config
from tests.tiny_runs import read_records, tiny_overrides, train_here, write_tiny_task

# the tiny task has 6 batches per epoch: a run of 10 steps crosses an epoch end and its validation
STEPS = 10


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_task(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="module")
def straight(task: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return record_run(task, tmp_path_factory.mktemp("straight"))


@pytest.fixture
def signal_handlers():
    """Lightning leaves SIGINT ignored after a Ctrl-C; put back what the test session had."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def record_run(task: dict[str, Path], directory: Path, *overrides: str) -> list[dict]:
    """Train the tiny task for STEPS steps in this process; what each step and validation logged."""
    recorder = directory / "steps.jsonl"
    overrides = (
        *tiny_overrides(task, directory / "logs", recorder),
        f"++trainer.max_steps={STEPS}",
        *overrides,
    )
    train_here(list(overrides), directory / "run")
    return read_records(recorder)


def assert_same_records(actual: list[dict], expected: list[dict]) -> None:
    """The same steps, batches and validation BLEU; the same losses up to float rounding."""
    assert [without_loss(r) for r in actual] == [without_loss(r) for r in expected]
    losses = [r["loss"] for r in expected if "loss" in r]
    assert [r["loss"] for r in actual if "loss" in r] == pytest.approx(losses, rel=1e-6)


def without_loss(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "loss"}


def test_same_seed_gives_the_same_losses_and_bleu(task, straight, tmp_path):
    assert any("val_bleu" in record for record in straight)
    assert_same_records(record_run(task, tmp_path), straight)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_at_step", "overrides"),
    [
        (4, ()),  # mid-epoch
        (6, ()),  # at the last batch of the epoch: the validation due then is skipped, not redone
        (2, ("trainer.accumulate_grad_batches=2",)),  # with gradient accumulation, at the end of a window
    ],
    ids=["mid_epoch", "epoch_end", "accumulation"],
)
def test_interrupted_run_resumes_exactly(task, straight, tmp_path, signal_handlers, stop_at_step, overrides):
    expected = record_run(task, tmp_path / "straight", *overrides) if overrides else straight
    expected = [r for r in expected if not ("val_bleu" in r and r["step"] == stop_at_step)]
    ctrl_c = (
        "+callbacks.ctrl_c._target_=tests.tiny_runs.SignalAt",
        f"+callbacks.ctrl_c.step={stop_at_step}",
        f"+callbacks.ctrl_c.signum={int(signal.SIGINT)}",
    )
    with pytest.raises(SystemExit) as exit_info:
        record_run(task, tmp_path / "first", *overrides, *ctrl_c)
    assert exit_info.value.code == 128 + signal.SIGINT
    first = read_records(tmp_path / "first" / "steps.jsonl")
    assert first[-1]["step"] == stop_at_step  # it stopped at once

    last = tmp_path / "first" / "run" / "checkpoints" / "last.ckpt"
    resumed = record_run(task, tmp_path / "resumed", *overrides, f"ckpt_path={last}")
    assert_same_records(first + resumed, expected)


@pytest.mark.slow
def test_a_resumed_run_keeps_the_best_validation_of_its_first_part(task, tmp_path, signal_handlers):
    # stopped at step 8, after the validation at step 6 (the end of the first epoch): the resumed part runs
    # no validation of its own, so its best validation is the one its checkpoint carried over
    ctrl_c = ("+callbacks.ctrl_c._target_=tests.tiny_runs.SignalAt", "+callbacks.ctrl_c.step=8",
              f"+callbacks.ctrl_c.signum={int(signal.SIGINT)}")  # fmt: skip
    with pytest.raises(SystemExit):
        record_run(task, tmp_path / "first", *ctrl_c)
    record_run(
        task, tmp_path / "resumed", f"ckpt_path={tmp_path / 'first' / 'run' / 'checkpoints' / 'last.ckpt'}"
    )
    resumed = json.loads((tmp_path / "resumed" / "run" / "summary.json").read_text())
    record_run(task, tmp_path / "straight")
    expected = json.loads((tmp_path / "straight" / "run" / "summary.json").read_text())
    best = ("best_val_bleu", "best_val_chrf", "best_step", "best_epoch")
    assert expected["best_step"] == 6  # the one validation: the resumed part has none of its own
    assert {key: resumed[key] for key in best} == {key: expected[key] for key in best}
    assert resumed["train_time_s"] > 0 and resumed["train_tokens_per_s"] > 0


def test_loader_position_counts_the_batches_trained_not_those_prefetched(task):
    cfg = compose_config(
        overrides=[
            f"data.train_path={task['train']}",
            f"data.valid_path={task['valid']}",
            "data.batch_size=16",
            "data.num_workers=2",
        ]
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    assert loader.batch_sampler.state_dict()["batches_done"] > 3  # the workers have drawn ahead
    assert loader.state_dict() == {"epoch": 0, "batches_done": 3}  # what a checkpoint written now holds
