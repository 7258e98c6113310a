"""Checkpoint files: atomic writes, and a clear error for every way a file can be wrong."""

import pickle

import pytest
import torch

from src.checkpoint import AtomicCheckpointIO, _check_targets, read_checkpoint
from src.errors import CheckpointError

GOOD = {"state_dict": {"net.w": torch.ones(2)}, "seq2seq_lab": {"format": 1}}


def test_atomic_save_then_read_round_trips(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(GOOD, path)
    assert torch.equal(read_checkpoint(path)["state_dict"]["net.w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(GOOD, path)
    before = path.read_bytes()

    def failing_save(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {}, "seq2seq_lab": {}}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_directory_instead_of_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save(GOOD, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"\x00\xffnot a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_never_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as file:
        torch.save({"state_dict": {}, "seq2seq_lab": {}, "payload": Evil()}, file, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_foreign_torch_file_is_not_a_seq2seq_lab_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a seq2seq-lab checkpoint"):
        read_checkpoint(path)


def test_config_naming_foreign_code_is_refused():
    with pytest.raises(CheckpointError, match="os.system"):
        _check_targets({"encoder": {"_target_": "os.system", "command": "rm -rf /"}}, "x.ckpt")


def test_a_checkpoint_of_another_format_version_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "future.ckpt"
    torch.save({"state_dict": {}, "seq2seq_lab": {"format": 2}}, path)
    with pytest.raises(
        CheckpointError, match="checkpoint format 2, but this version of seq2seq-lab reads format 1"
    ):
        read_checkpoint(path)
