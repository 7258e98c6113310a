"""Translate with a checkpoint: `python -m src.translate ckpt_path=... < input.txt > output.txt`.

Reads lines from `input=` or stdin, translates them in batches and writes one output line per input line,
in order, to `output=` or stdout; an interactive prompt when stdin is a terminal (see conf/translate.yaml).
"""

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig

from src.checkpoint import load_translator
from src.config import register_resolvers
from src.decoding import Hypothesis
from src.entry import entry_point
from src.errors import ConfigError, DataError
from src.plotting import text_heatmap
from src.translator import Translator

log = logging.getLogger("seq2seq-lab")
register_resolvers()

# lines read ahead of translating: enough for well-filled length-sorted batches, bounded memory
CHUNK_BATCHES = 20


def translate(cfg: DictConfig) -> None:
    translator, _ = load_translator(cfg)
    if cfg.show_attention and translator.net.num_heads == 0:
        raise ConfigError(
            "show_attention=true, but this model has no attention to show (it was trained with "
            "attention=none). Run without show_attention."
        )
    interactive = cfg.input is None and sys.stdin.isatty()
    with ExitStack() as files:
        lines = _open_input(cfg.input, files)
        out = _open_output(cfg.output, files)
        if interactive:  # answer every line as soon as it is typed
            lines, chunk_size = prompted(lines), 1
        else:  # read lines ahead, to fill length-sorted batches
            chunk_size = CHUNK_BATCHES * translator.batch_size
        for number, text, nbest in translate_lines(translator, lines, chunk_size):
            out.write(format_nbest(translator, cfg, number, text, nbest))
            out.flush()


def translate_lines(
    translator: Translator, lines: Iterable[str], chunk_size: int
) -> Iterator[tuple[int, str, list[Hypothesis]]]:
    """(line number, text, n-best) per input line, in order, translating `chunk_size` lines at a time."""
    texts = (line.rstrip("\r\n") for line in lines)
    number = 0
    while chunk := list(islice(texts, chunk_size)):
        for text, nbest in zip(chunk, translator.translate(chunk), strict=True):
            number += 1
            yield number, text, nbest


def prompted(lines: TextIO) -> Iterator[str]:
    """The lines typed at a prompt (on stderr), until end of input (Ctrl-D) or Ctrl-C."""
    print("Type a sentence and press Enter; Ctrl-D to quit.", file=sys.stderr)
    try:
        while True:
            print("> ", end="", file=sys.stderr, flush=True)
            line = lines.readline()
            if not line:
                break
            yield line
    except KeyboardInterrupt:
        pass
    print(file=sys.stderr)


def format_nbest(
    translator: Translator, cfg: DictConfig, number: int, text: str, nbest: list[Hypothesis]
) -> str:
    """The output lines of one input line: its translation, or with n-best its numbered, scored list;
    each followed by its attention heatmap when asked for."""
    nbest_mode = cfg.decode.n_best > 1
    lines = []
    for hypothesis in nbest:
        fields = [str(number)] if nbest_mode else []
        if nbest_mode or cfg.scores:
            fields.append(f"{hypothesis.score:.4f}")
        lines.append("\t".join([*fields, translator.to_text(hypothesis)]))
        if cfg.show_attention and hypothesis.attention is not None:
            lines.append(text_heatmap(hypothesis.attention, *translator.attention_labels(text, hypothesis)))
    return "".join(line + "\n" for line in lines)


def _open_input(path: str | None, files: ExitStack) -> TextIO:
    """`path` or stdin, as UTF-8; undecodable bytes become U+FFFD (then <unk>) instead of an error."""
    if path is None:
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")
        return sys.stdin
    if not Path(path).is_file():
        raise DataError(f"input={path}: no such file. Name a text file with one sentence per line.")
    return files.enter_context(open(path, encoding="utf-8", errors="replace"))


def _open_output(path: str | None, files: ExitStack) -> TextIO:
    if path is None:
        sys.stdout.reconfigure(encoding="utf-8")
        return sys.stdout
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return files.enter_context(open(path, "w", encoding="utf-8"))


@entry_point("translate")
def main(cfg: DictConfig) -> None:
    translate(cfg)


if __name__ == "__main__":
    main()
