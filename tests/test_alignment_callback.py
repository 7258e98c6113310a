"""The AER callback: `attention/aer` in the event file after every validation, with a heatmap of gold links."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.callbacks.alignment_error import AlignmentError
from src.errors import ConfigError, DataError
from tests.tiny_runs import tiny_overrides, train_here, write_tiny_task


def write_gold(directory: Path, task: dict[str, Path]) -> tuple[Path, Path]:
    """The validation pairs of the reverse task and their true alignment: source word i is target n-1-i."""
    pairs = [line.split("\t") for line in task["valid"].read_text().splitlines()]
    (directory / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    gold = [" ".join(f"{i + 1}-{len(s.split()) - i}" for i in range(len(s.split()))) for s, _ in pairs]
    (directory / "pairs.gold").write_text("".join(line + "\n" for line in gold))
    return directory / "pairs.tsv", directory / "pairs.gold"


@pytest.mark.slow
def test_the_callback_writes_aer_and_a_gold_heatmap_to_the_event_file(tmp_path):
    task = write_tiny_task(tmp_path)
    pairs, gold = write_gold(tmp_path, task)
    overrides = [
        o for o in tiny_overrides(task, tmp_path / "logs") if o not in ("~logger", "~callbacks.lr_monitor")
    ]
    overrides += [
        "trainer.max_epochs=2",
        f"callbacks.alignment_error.input={pairs}",
        f"callbacks.alignment_error.gold={gold}",
    ]
    train_here(overrides, tmp_path / "run")
    (events,) = (tmp_path / "run" / "tensorboard").glob("**/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    aer = accumulator.Scalars("attention/aer")
    assert len(aer) == 2  # one per validation
    assert all(0.0 <= point.value <= 100.0 for point in aer)
    assert {"attention/alignment_precision", "attention/alignment_recall"} <= set(
        accumulator.Tags()["scalars"]
    )
    assert "attention/aer_pair" in accumulator.Tags()["images"]


def test_the_callback_is_off_without_gold():
    assert AlignmentError().pairs == []


def test_gold_without_pairs_names_the_missing_option(tmp_path):
    with pytest.raises(ConfigError, match="callbacks.alignment_error.input is missing"):
        AlignmentError(gold=str(tmp_path / "x.gold"))


def test_a_gold_file_with_a_line_too_few_is_refused(tmp_path):
    task = write_tiny_task(tmp_path)
    pairs, gold = write_gold(tmp_path, task)
    gold.write_text("".join(gold.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match="has no gold line"):
        AlignmentError(input=str(pairs), gold=str(gold))


def test_for_a_model_trained_with_data_reverse_each_pair_and_its_gold_are_turned_round(tmp_path):
    (tmp_path / "pairs.tsv").write_text("the big cat\tle chat\n")
    (tmp_path / "pairs.gold").write_text("1-1 3-2 2p2\n")
    forward = AlignmentError(input=str(tmp_path / "pairs.tsv"), gold=str(tmp_path / "pairs.gold"))
    turned = AlignmentError(
        input=str(tmp_path / "pairs.tsv"), gold=str(tmp_path / "pairs.gold"), reverse=True
    )
    assert turned.pairs == [(["le", "chat"], ["the", "big", "cat"])]
    assert turned.gold[0].sure == {(0, 0), (1, 2)} == {(j, i) for i, j in forward.gold[0].sure}
    assert turned.gold[0].possible == {(0, 0), (1, 2), (1, 1)}
