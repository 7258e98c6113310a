"""Bad corpora end in a DataError naming the file, the line and the fix, also through `python -m src.train`.

The reader's own cases (every kind of malformed line, BOM, CRLF, missing/empty files, ...) are tested in
tests/test_tsv.py, and max_len filtering in tests/test_datamodule.py; here: what those tests leave out, and
the command line (exit status 2, the message, no traceback).
"""

import gzip
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.data.datamodule import TranslationDataModule
from src.data.tokenizers import WordTokenizer
from src.data.tsv import read_parallel_tsv
from src.errors import DataError
from tests.conftest import run_entry, write_tsv

GOOD = [("a b c", "c b a"), ("d e", "e d"), ("f g h i", "i h g f")] * 5


def make_datamodule(train: Path, **kwargs) -> TranslationDataModule:
    dm = TranslationDataModule(str(train), valid_ratio=0.0, src_tokenizer=WordTokenizer(), **kwargs)
    dm.setup("fit")
    return dm


def test_binary_file_is_rejected_at_its_first_line(tmp_path):
    path = tmp_path / "corpus.tsv.gz"
    path.write_bytes(gzip.compress(b"a\tb\n" * 100))
    with pytest.raises(DataError, match=rf"^{path}:1: (invalid UTF-8|control character)"):
        read_parallel_tsv(path)


def test_bom_and_crlf_together_are_accepted(tmp_path):
    path = tmp_path / "windows.tsv"
    path.write_bytes(b"\xef\xbb\xbfGo.\tVa !\r\nHi.\tSalut.\r\n")
    assert read_parallel_tsv(path).pairs == [("Go.", "Va !"), ("Hi.", "Salut.")]


def test_extremely_long_pair_is_dropped_by_max_len_and_the_rest_is_kept(tmp_path, caplog):
    long_pair = ("w " * 200_000 + "end", "short")
    train = write_tsv(tmp_path / "train.tsv", [*GOOD, long_pair])
    with caplog.at_level(logging.WARNING):
        dm = make_datamodule(train, max_len=50)
    assert dm.stats["pairs"]["train"] == len(GOOD)
    assert "dropped 1 training pairs longer than data.max_len=50" in caplog.text


def test_bad_line_in_the_validation_file_names_that_file(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", GOOD)
    valid = tmp_path / "valid.tsv"
    valid.write_bytes(b"ok\tfine\nno tab here\n")
    with pytest.raises(DataError, match=rf"^{valid}:2: expected 'source<TAB>target' but found no tab"):
        make_datamodule(train, valid_path=str(valid))


# lines of random bytes mixed with well-formed lines
good_line = st.tuples(st.text(min_size=1), st.text(min_size=1)).map(lambda p: f"{p[0]}\t{p[1]}".encode())
any_bytes = st.lists(st.one_of(st.binary(max_size=20), good_line), max_size=8).map(b"\n".join)


# any bytes at all: the reader returns pairs or raises DataError, never anything else
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=any_bytes, skip=st.booleans())
def test_arbitrary_bytes_give_pairs_or_a_data_error(tmp_path, data, skip):
    path = tmp_path / "fuzz.tsv"
    path.write_bytes(data)
    try:
        corpus = read_parallel_tsv(path, on_bad_line="skip" if skip else "error")
    except DataError as err:
        assert str(err).startswith(str(path))
        return
    assert corpus.pairs
    for source, target in corpus.pairs:
        assert source.strip() and target.strip()
        assert "\t" not in source + target and "\n" not in source + target


BAD_CORPORA = {
    # name -> (file contents or None for a missing file, extra overrides, the message)
    "missing": (
        None,
        [],
        "nope.tsv: file not found. Set data.train_path to an existing 'source<TAB>target' file.",
    ),
    "invalid_utf8": (
        b"a\tb\nc\td\ncaf\xe9\tcoffee\n",
        [],
        "train.tsv:3: invalid UTF-8 at byte 3. Re-encode the file as UTF-8, or set data.on_bad_line=skip",
    ),
    "all_longer_than_max_len": (
        b"a b c\tc b a\nd e f\tf e d\n",
        ["data.max_len=2", "data.valid_ratio=0"],
        "all 2 training pairs are longer than data.max_len=2 tokens. Raise data.max_len or set it to null.",
    ),
}


@pytest.mark.parametrize("case", BAD_CORPORA)
def test_cli_bad_corpus_exits_2_with_the_message_and_no_traceback(tmp_path, case):
    contents, overrides, message = BAD_CORPORA[case]
    train = tmp_path / ("nope.tsv" if contents is None else "train.tsv")
    if contents is not None:
        train.write_bytes(contents)
    result = run_entry(
        "src.train",
        f"data.train_path={train}",
        "data.valid_path=null",
        "data.test_path=null",
        *overrides,
        f"paths.log_dir={tmp_path / 'outputs'}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert message in output
    assert "Traceback" not in output
