"""Bad checkpoints end in a CheckpointError before any training, also through `python -m src.train`.

The reader itself (missing, directory, truncated, garbage, pickled objects, foreign torch files, foreign
`_target_`s) is tested in tests/test_checkpoint_io.py; here: resuming with the wrong data or model, and
the command line (exit status 2, the message, no traceback, no code run from the file).
"""

import pickle
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from src.data.codec import Codec
from src.data.datamodule import TranslationDataModule
from src.data.tokenizers import WordTokenizer
from src.errors import CheckpointError
from src.lit_module import _check_weights_fit
from src.train import check_resumable
from tests.conftest import TINY_MODEL, compose_config, run_entry, write_tsv

DIGITS = [("1 2 3", "3 2 1"), ("4 5", "5 4"), ("6 7 8 9", "9 8 7 6")] * 4
WORDS = [("the cat", "cat the"), ("a dog", "dog a")] * 4


def codec_of(path: Path) -> Codec:
    dm = TranslationDataModule(str(path), valid_ratio=0.0, src_tokenizer=WordTokenizer())
    dm.setup("fit")
    return dm.codec


def fake_checkpoint(path: Path, codec: Codec) -> Path:
    """What check_resumable reads of a checkpoint: weights (none needed here) and the codec."""
    torch.save({"state_dict": {}, "seq2seq_lab": {"format": 1, "codec": codec.state_dict()}}, path)
    return path


def test_resuming_with_the_same_data_is_accepted(tmp_path):
    codec = codec_of(write_tsv(tmp_path / "train.tsv", DIGITS))
    check_resumable(str(fake_checkpoint(tmp_path / "last.ckpt", codec)), codec)


def test_resuming_with_other_data_names_the_vocabulary_and_the_fix(tmp_path):
    saved = codec_of(write_tsv(tmp_path / "digits.tsv", DIGITS))
    ckpt = fake_checkpoint(tmp_path / "last.ckpt", saved)
    with pytest.raises(CheckpointError) as err:
        check_resumable(str(ckpt), codec_of(write_tsv(tmp_path / "words.tsv", WORDS)))
    assert str(err.value) == (
        f"Cannot resume from {ckpt}: its src vocabulary differs from the one built from the current data "
        "(different corpus, tokenizer or data.*_min_freq/max_size?). Resume with the data settings of the "
        "original run (see its .hydra/config.yaml)."
    )


@pytest.mark.parametrize("content", [b"", b"hello\n", b"PK\x03\x04 half a zip"])
def test_resuming_from_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "last.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a checkpoint at all"):
        check_resumable(str(path), codec_of(write_tsv(tmp_path / "train.tsv", DIGITS)))


def test_weights_of_another_architecture_are_refused_before_loading(tmp_path):
    cfg = compose_config(overrides=[*TINY_MODEL])
    codec = codec_of(write_tsv(tmp_path / "train.tsv", DIGITS))
    module = instantiate(cfg.model, codec=codec)
    bigger = instantiate(compose_config(overrides=[*TINY_MODEL, "encoder.hidden_size=64"]).model, codec=codec)
    with pytest.raises(CheckpointError) as err:
        _check_weights_fit(bigger.state_dict(), module.state_dict(), "last.ckpt")
    message = str(err.value)
    assert message.startswith(
        "Cannot resume from last.ckpt: its weights do not fit the model this config builds"
    )
    assert "(net.decoder.attention.key_layer.weight is (32, 64), not (32, 32); " in message
    assert " and 8 more)" in message
    assert "Resume with the encoder/attention/decoder/model.net settings of the original run" in message
    _check_weights_fit(module.state_dict(), module.state_dict(), "last.ckpt")  # the same model fits


def test_loading_hook_refuses_weights_that_do_not_fit(tmp_path):
    codec = codec_of(write_tsv(tmp_path / "train.tsv", DIGITS))
    module = instantiate(compose_config(overrides=[*TINY_MODEL]).model, codec=codec)
    state = module.state_dict()
    del state["net.output_layer.bias"]
    with pytest.raises(CheckpointError, match=r"net\.output_layer\.bias missing"):
        module.on_load_checkpoint({"state_dict": state, "seq2seq_lab": {}})


class WritesAFile:
    """A pickled object that would create `path` when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def cli_resume(tmp_path: Path, ckpt: Path, train: Path, *overrides: str):
    return run_entry(
        "src.train",
        f"ckpt_path={ckpt}",
        f"data.train_path={train}",
        "data.valid_path=null",
        "data.test_path=null",
        *overrides,
        f"paths.log_dir={tmp_path / 'outputs'}",
    )


def assert_clean_failure(result, message: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert message in output
    assert "Traceback" not in output


def test_cli_truncated_checkpoint_exits_2(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", DIGITS)
    ckpt = fake_checkpoint(tmp_path / "last.ckpt", codec_of(train))
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    result = cli_resume(tmp_path, ckpt, train)
    assert_clean_failure(
        result,
        f"Checkpoint {ckpt} is truncated, corrupt or not a checkpoint at all. Use another checkpoint of the run",
    )


def test_cli_checkpoint_with_pickled_code_is_refused_and_the_code_never_runs(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", DIGITS)
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    with open(ckpt, "wb") as file:
        torch.save({"state_dict": {}, "seq2seq_lab": WritesAFile(marker)}, file, pickle_module=pickle)
    result = cli_resume(tmp_path, ckpt, train)
    assert_clean_failure(result, f"Checkpoint {ckpt} holds objects other than tensors and plain data")
    assert not marker.exists()


def test_cli_resuming_with_other_data_exits_2(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "last.ckpt", codec_of(write_tsv(tmp_path / "digits.tsv", DIGITS)))
    result = cli_resume(tmp_path, ckpt, write_tsv(tmp_path / "words.tsv", WORDS))
    assert_clean_failure(result, f"Cannot resume from {ckpt}: its src vocabulary differs")


@pytest.mark.slow
def test_cli_resuming_with_another_model_exits_2_before_training(tmp_path, tiny_checkpoint):
    result = run_entry(
        "src.train",
        f"ckpt_path={tiny_checkpoint['ckpt']}",
        f"data.train_path={tiny_checkpoint['train']}",
        f"data.valid_path={tiny_checkpoint['valid']}",
        f"data.test_path={tiny_checkpoint['test']}",
        *TINY_MODEL,
        "encoder.hidden_size=64",
        "trainer.accelerator=cpu",
        "~callbacks.progress_bar",
        f"paths.log_dir={tmp_path / 'outputs'}",
    )
    assert_clean_failure(result, "its weights do not fit the model this config builds")
    assert not list((tmp_path / "outputs").glob("train/runs/*/checkpoints/*.ckpt"))
