"""The parallel TSV reader: valid files, each kind of malformed line, unusable files."""

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.data.tsv import read_parallel_tsv
from src.errors import DataError


def write_bytes(tmp_path: Path, data: bytes, name: str = "corpus.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_reads_pairs_in_file_order(tmp_path):
    path = write_bytes(tmp_path, b"Go.\tVa !\nHi.\tSalut.\n")
    assert read_parallel_tsv(path).pairs == [("Go.", "Va !"), ("Hi.", "Salut.")]


def test_accepts_utf8_byte_order_mark(tmp_path):
    path = write_bytes(tmp_path, b"\xef\xbb\xbfGo.\tVa !\n")
    assert read_parallel_tsv(path).pairs == [("Go.", "Va !")]


def test_accepts_crlf_line_endings(tmp_path):
    path = write_bytes(tmp_path, b"a\tb\r\nc\td\r\n")
    assert read_parallel_tsv(path).pairs == [("a", "b"), ("c", "d")]


def test_accepts_last_line_without_newline(tmp_path):
    path = write_bytes(tmp_path, b"a\tb\nc\td")
    assert read_parallel_tsv(path).pairs == [("a", "b"), ("c", "d")]


def test_quotes_are_ordinary_characters(tmp_path):
    path = write_bytes(tmp_path, b'"Hi," he said.\t"Salut", dit-il.\n"\t"\n')
    assert read_parallel_tsv(path).pairs == [('"Hi," he said.', '"Salut", dit-il.'), ('"', '"')]


def test_keeps_no_break_spaces_inside_a_side(tmp_path):
    path = write_bytes(tmp_path, "Go!\tVa\u202f!\n".encode())
    assert read_parallel_tsv(path).pairs == [("Go!", "Va\u202f!")]


def test_reads_extremely_long_line(tmp_path):
    long_side = "word " * 400_000 + "end"
    path = write_bytes(tmp_path, f"{long_side}\tshort\n".encode())
    assert read_parallel_tsv(path).pairs == [(long_side, "short")]


BAD_LINES = {
    "no_tab": (b"just one side", "found no tab"),
    "extra_tab": (b"a\tb\tc", "found 2 tabs"),
    "empty_source": (b"\ttarget", "source side is empty"),
    "whitespace_target": (b"source\t  \xc2\xa0 ", "target side is empty"),
    "empty_line": (b"", "empty line"),
    "invalid_utf8": (b"caf\xe9\tcoffee", "invalid UTF-8"),
    "nul_byte": (b"a\x00b\tc", "control character U+0000"),
}


@pytest.mark.parametrize("kind", BAD_LINES)
def test_bad_line_raises_with_file_line_and_fix(tmp_path, kind):
    bad, what = BAD_LINES[kind]
    path = write_bytes(tmp_path, b"ok\tfine\n" * 2 + bad + b"\nok\tfine\n")
    with pytest.raises(DataError) as err:
        read_parallel_tsv(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: ")
    assert what in message
    assert "data.on_bad_line=skip" in message


def test_skip_mode_counts_each_kind_and_keeps_good_pairs(tmp_path):
    lines = [b"a\tb", b"no tab", b"x\ty\tz", b"\xff\tq", b"c\td", b"  \tq", b"no tab either", b"\x00\x01\x02"]
    path = write_bytes(tmp_path, b"\n".join(lines) + b"\n")
    corpus = read_parallel_tsv(path, on_bad_line="skip")
    assert corpus.pairs == [("a", "b"), ("c", "d")]
    assert corpus.skipped == {
        "no_tab": 2,
        "extra_tab": 1,
        "invalid_utf8": 1,
        "empty_side": 1,
        "control_char": 1,
    }
    assert corpus.skipped_lines == [2, 3, 4, 6, 7, 8]


def test_skip_mode_logs_one_warning_with_the_counts(tmp_path, caplog):
    path = write_bytes(tmp_path, b"a\tb\nbad\n")
    with caplog.at_level(logging.WARNING, logger="src.data.tsv"):
        read_parallel_tsv(path, on_bad_line="skip")
    assert len(caplog.records) == 1
    assert "skipped 1 malformed lines (1 no tab)" in caplog.text


def test_clean_file_reports_nothing_skipped(tmp_path):
    corpus = read_parallel_tsv(write_bytes(tmp_path, b"a\tb\n"), on_bad_line="skip")
    assert corpus.skipped == {}
    assert corpus.skipped_lines == []


def test_missing_file_names_path_and_option(tmp_path):
    path = tmp_path / "nope.tsv"
    with pytest.raises(DataError, match=r"nope\.tsv: file not found\. Set data\.valid_path"):
        read_parallel_tsv(path, option="data.valid_path")


def test_directory_is_rejected(tmp_path):
    with pytest.raises(DataError, match=r"is a directory.*data\.train_path"):
        read_parallel_tsv(tmp_path)


def test_empty_file_is_rejected(tmp_path):
    with pytest.raises(DataError, match=r"empty\.tsv: file is empty.*data\.train_path"):
        read_parallel_tsv(write_bytes(tmp_path, b"", "empty.tsv"))


def test_file_of_only_bad_lines_is_rejected_in_skip_mode(tmp_path):
    path = write_bytes(tmp_path, b"bad\nworse\n")
    with pytest.raises(DataError, match=r"no valid 'source<TAB>target' pairs \(2 malformed lines"):
        read_parallel_tsv(path, on_bad_line="skip")


# Any side without tab, newline or other control characters, not blank, survives a write/read cycle.
side_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"), min_size=1
).filter(lambda text: text.strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(side_text, side_text), min_size=1, max_size=5))
def test_written_pairs_read_back_unchanged(tmp_path, pairs):
    path = tmp_path / "prop.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    assert read_parallel_tsv(path).pairs == pairs
