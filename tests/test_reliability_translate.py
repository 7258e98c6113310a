"""Odd input to translate/evaluate gives a translation per line, never a crash.

tests/test_translate.py covers the command's own cases (empty and blank lines, truncation of long lines,
undecodable bytes in an input file); here: the `Translator` every command shares, and raw bytes on stdin.
"""

import logging
import math
import os
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from src.checkpoint import load_model
from src.config import PROJECT_ROOT
from src.data.codec import Codec
from src.data.tokenizers import WordTokenizer
from src.data.vocab import Vocabulary
from src.decoding import SequenceGenerator
from src.translator import Translator
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def translator(tiny_checkpoint) -> Translator:
    loaded = load_model(tiny_checkpoint["ckpt"])
    return Translator(loaded.net, loaded.codec, SequenceGenerator(beam_size=2), batch_size=4, max_src_len=50)


def test_empty_and_blank_lines_give_empty_translations(translator):
    assert translator.translate_text(["", "   ", "\t"]) == ["", "", ""]


def test_a_line_of_only_unknown_words_is_translated(translator):
    (nbest,) = translator.translate(["zebra quixotic ñandú"])
    assert translator.codec.src_tokens("zebra quixotic ñandú") == ["<unk>"] * 3
    assert math.isfinite(nbest[0].score)  # a (poor) translation of three <unk>, not an error


def test_control_characters_and_replacement_characters_are_translated(translator):
    texts = ["1 \x00 2", "3 \ufffd\ufffd 4", "\x1b[31m5\x1b[0m"]
    assert len(translator.translate_text(texts)) == 3


def test_a_very_long_line_is_cut_with_a_warning_and_translated(translator, caplog):
    long_line = " ".join(str(i % 10) for i in range(20_000))
    with caplog.at_level(logging.WARNING):
        output = translator.translate_text(["1 2", long_line, "3 4"])
    assert "Truncated a source of 20000 tokens to max_src_len=50" in caplog.text
    assert len(output) == 3 and output[1]


def test_max_src_len_keeps_a_long_line_within_a_transformer_position_table():
    cfg = compose_config(
        overrides=[
            "encoder=transformer",
            "decoder=transformer",
            "attention=multihead",
            "encoder.max_positions=16",
            "decoder.max_positions=32",
            "encoder.num_layers=1",
            "decoder.num_layers=1",
            "model.net.embedding_size=16",
            "encoder.d_model=16",
            "decoder.d_model=16",
            "attention.hidden_size=16",
            "encoder.d_ff=32",
            "decoder.d_ff=32",
        ]
    )
    tokenizer = WordTokenizer()
    vocab = Vocabulary([str(i) for i in range(10)])
    codec = Codec(tokenizer, tokenizer, vocab, vocab)
    torch.manual_seed(0)
    net = instantiate(cfg.model.net)(src_vocab_size=len(vocab), tgt_vocab_size=len(vocab))
    generator = SequenceGenerator(max_len_a=1.0, max_len_b=8)
    translator = Translator(net, codec, generator, max_src_len=16)
    assert len(translator.translate_text([" ".join("7" * 1000)])) == 1


@pytest.mark.slow
def test_cli_raw_bytes_on_stdin_give_one_output_line_each(tiny_checkpoint, tmp_path):
    lines = [b"1 2 3", b"caf\xe9 \xff\xfe 4", b"", b"\x00\x01\x02", b"zebra quixotic", b"5 6" * 3000]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.translate",
            f"ckpt_path={tiny_checkpoint['ckpt']}",
            f"paths.log_dir={tmp_path}",
        ],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    output = result.stdout.decode("utf-8").split("\n")[:-1]
    assert len(output) == len(lines)
    assert output[2] == ""
    assert b"Traceback" not in result.stderr
