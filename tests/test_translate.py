"""`python -m src.translate`: one output line per input line, in order, from the checkpoint alone."""

import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from src.config import PROJECT_ROOT
from src.errors import ConfigError, DataError
from src.translate import translate
from tests.conftest import compose_config, run_entry

pytestmark = pytest.mark.usefixtures("one_thread")

LONG_LINE = " ".join(str(i % 10) for i in range(30))


def translate_file(tiny_checkpoint, tmp_path, lines: list[str] | bytes, *overrides: str) -> list[str]:
    """Run translate in-process on a file holding `lines`; the output file's lines."""
    source = tmp_path / "input.txt"
    if isinstance(lines, bytes):
        source.write_bytes(lines)
    else:
        source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    cfg = compose_config(
        "translate",
        [
            f"ckpt_path={tiny_checkpoint['ckpt']}",
            f"input={source}",
            f"output={tmp_path / 'output.txt'}",
            f"paths.output_dir={tmp_path}",
            *overrides,
        ],
    )
    translate(cfg)
    return (tmp_path / "output.txt").read_text(encoding="utf-8").split("\n")[:-1]


@pytest.mark.slow
def test_stdin_to_stdout_from_the_checkpoint_alone(tiny_checkpoint, tmp_path):
    shutil.copy(tiny_checkpoint["ckpt"], tmp_path / "model.ckpt")
    lines = ["1 2 3", "", "the cat 4 5", LONG_LINE, "7 8 9 0", "   "]
    result = run_entry(
        "src.translate",
        "ckpt_path=model.ckpt",
        "max_src_len=10",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
        stdin="".join(line + "\n" for line in lines),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout.split("\n")[:-1]
    assert len(output) == len(lines)  # nothing but the translations on stdout
    assert output[1] == output[5] == ""  # empty (or blank) in, empty out
    assert all(output[i] for i in (0, 2, 3, 4))
    assert set(" ".join(output).split()) <= set("0123456789")
    assert "Truncated a source of 30 tokens to max_src_len=10" in result.stderr


def test_output_lines_follow_input_lines(tiny_checkpoint, tmp_path):
    lines = ["1 2 3", "4 5 6 7 8", "", "9 0 1 2"]
    output = translate_file(tiny_checkpoint, tmp_path, lines, "batch_size=2")
    singles = [translate_file(tiny_checkpoint, tmp_path, [line])[0] for line in lines]
    assert output == singles


def test_nbest_prints_numbered_scored_hypotheses_best_first(tiny_checkpoint, tmp_path):
    output = translate_file(
        tiny_checkpoint, tmp_path, ["1 2 3", "4 5 6 7"], "decode.beam_size=4", "decode.n_best=3"
    )
    rows = [line.split("\t") for line in output]
    assert [row[0] for row in rows] == ["1", "1", "1", "2", "2", "2"]
    for number in ("1", "2"):
        scores = [float(row[1]) for row in rows if row[0] == number]
        assert scores == sorted(scores, reverse=True)
        assert len({row[2] for row in rows if row[0] == number}) == 3  # three different translations


def test_scores_option_adds_a_score_column(tiny_checkpoint, tmp_path):
    output = translate_file(tiny_checkpoint, tmp_path, ["1 2 3", ""], "scores=true")
    score, text = output[0].split("\t")
    assert float(score) < 0 and text
    assert output[1] == "0.0000\t"


def test_show_attention_prints_a_heatmap_with_unknown_words_as_unk(tiny_checkpoint, tmp_path):
    output = translate_file(tiny_checkpoint, tmp_path, ["1 cat 2"], "show_attention=true")
    assert output[1].split() == ["0", "1", "2"]  # one column per source token
    assert output[-3:] == ["       0 = 1", "       1 = <unk>", "       2 = 2"]
    assert any(line.lstrip().startswith("<eos>") for line in output)


def test_undecodable_bytes_do_not_stop_the_translation(tiny_checkpoint, tmp_path):
    output = translate_file(tiny_checkpoint, tmp_path, b"1 \xff\xfe 2\n\x00\x01\n3 4\n")
    assert len(output) == 3


def test_missing_input_file_names_the_option(tiny_checkpoint, tmp_path):
    cfg = compose_config(
        "translate", [f"ckpt_path={tiny_checkpoint['ckpt']}", f"input={tmp_path / 'nope.txt'}"]
    )
    with pytest.raises(DataError, match="input="):
        translate(cfg)


def test_missing_ckpt_path_is_a_config_error():
    with pytest.raises(ConfigError, match="ckpt_path is missing"):
        translate(compose_config("translate"))


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_interactive_prompt_translates_each_line_as_it_is_typed(tiny_checkpoint, tmp_path):
    primary, terminal = os.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "src.translate",
            f"ckpt_path={tiny_checkpoint['ckpt']}",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        os.write(primary, b"1 2 3\n")
        first = read_line(process.stdout, timeout=300)  # answered while the input is still open
        assert first and set(first.split()) <= set("0123456789")
        os.write(primary, b"\x04")  # Ctrl-D
        assert process.wait(timeout=60) == 0
        assert b"Ctrl-D to quit" in process.stderr.read()
    finally:
        process.kill()
        os.close(primary)
        os.close(terminal)


def read_line(stream, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no output line within {timeout} s (got {line!r})")
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            break
        line += chunk
    return line.decode("utf-8").rstrip("\n")
