"""Read a headerless parallel corpus: one `source<TAB>target` pair per line, UTF-8.

Quotes are ordinary characters (no CSV quoting). A UTF-8 byte order mark and CRLF line endings are
accepted. The file is read as bytes and decoded line by line, so a line of invalid UTF-8 is reported
with its own line number instead of failing the whole file.

`reverse=True` reads each line as (second column, first column): a model of the other direction is trained
and scored from the same files (`data.reverse`, e.g. French->English from an English<TAB>French corpus).
"""

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from src.errors import DataError

log = logging.getLogger(__name__)

OnBadLine = Literal["error", "skip"]
ON_BAD_LINE_CHOICES = ("error", "skip")

_BOM = b"\xef\xbb\xbf"
# C0/C1 control characters other than tab: NUL bytes and binary garbage land here.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SKIP_HINT = "or set data.on_bad_line=skip to skip malformed lines"

# What each kind of bad line means, for the skip-mode summary.
BAD_LINE_KINDS = {
    "no_tab": "no tab",
    "extra_tab": "more than one tab",
    "empty_line": "empty line",
    "empty_side": "empty source or target",
    "invalid_utf8": "invalid UTF-8",
    "control_char": "control character (binary data?)",
}


@dataclass
class TsvCorpus:
    """The pairs of a file, and what was skipped (kind -> count, 1-based line numbers)."""

    pairs: list[tuple[str, str]]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: list[int] = field(default_factory=list)


class _BadLine(Exception):
    def __init__(self, kind: str, what: str, fix: str = f"Fix the line, {_SKIP_HINT}.") -> None:
        super().__init__(what)
        self.kind, self.what, self.fix = kind, what, fix


def read_parallel_tsv(
    path: str | Path,
    on_bad_line: OnBadLine = "error",
    *,
    option: str = "data.train_path",
    reverse: bool = False,
) -> TsvCorpus:
    """Read `path` into (source, target) pairs: (first column, second column), or (second, first) with
    `reverse`.

    on_bad_line="error" raises `DataError("<file>:<line>: <what>. <fix>")` at the first malformed
    line; "skip" drops malformed lines, logs one warning and reports counts per kind. `option` is the
    config key that named the file, quoted when the file itself is unusable.
    """
    if on_bad_line not in ON_BAD_LINE_CHOICES:
        raise ValueError(f"on_bad_line must be one of {ON_BAD_LINE_CHOICES}, got {on_bad_line!r}")
    path = Path(path)
    _check_file(path, option)
    corpus = TsvCorpus(pairs=[])
    kinds: Counter[str] = Counter()
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                corpus.pairs.append(_parse_line(raw, first=number == 1))
            except _BadLine as bad:
                if on_bad_line == "error":
                    raise DataError(f"{path}:{number}: {bad.what}. {bad.fix}") from None
                kinds[bad.kind] += 1
                corpus.skipped_lines.append(number)
    corpus.skipped = dict(kinds)
    if reverse:
        corpus.pairs = [(target, source) for source, target in corpus.pairs]
    if kinds:
        _warn_skipped(path, corpus)
    if not corpus.pairs:
        raise DataError(
            f"{path}: no valid 'source<TAB>target' pairs ({len(corpus.skipped_lines)} malformed lines "
            f"skipped). Fix the file or set {option} to another file."
        )
    return corpus


def _check_file(path: Path, option: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found. Set {option} to an existing 'source<TAB>target' file.")
    if not path.is_file():
        raise DataError(f"{path}: is a directory, not a file. Set {option} to a 'source<TAB>target' file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty. Set {option} to a file of 'source<TAB>target' lines.")


def _parse_line(raw: bytes, first: bool) -> tuple[str, str]:
    if first and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    raw = raw.removesuffix(b"\n").removesuffix(b"\r")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _BadLine(
            "invalid_utf8",
            f"invalid UTF-8 at byte {err.start}",
            f"Re-encode the file as UTF-8, {_SKIP_HINT}.",
        ) from None
    if not line.strip():
        raise _BadLine("empty_line", "empty line")
    control = _CONTROL.search(line)
    if control:
        raise _BadLine(
            "control_char",
            f"control character U+{ord(control.group()):04X} at column {control.start() + 1} (binary data?)",
        )
    tabs = line.count("\t")
    if tabs == 0:
        raise _BadLine("no_tab", "expected 'source<TAB>target' but found no tab")
    if tabs > 1:
        raise _BadLine("extra_tab", f"expected 'source<TAB>target' but found {tabs} tabs")
    source, target = line.split("\t")
    for side, text in (("source", source), ("target", target)):
        if not text.strip():
            raise _BadLine("empty_side", f"the {side} side is empty or only whitespace")
    return source, target


def _warn_skipped(path: Path, corpus: TsvCorpus) -> None:
    counts = ", ".join(f"{n} {BAD_LINE_KINDS[kind]}" for kind, n in sorted(corpus.skipped.items()))
    shown = ", ".join(map(str, corpus.skipped_lines[:10]))
    more = ", ..." if len(corpus.skipped_lines) > 10 else ""
    log.warning(
        "%s: skipped %d malformed lines (%s); lines %s%s",
        path,
        len(corpus.skipped_lines),
        counts,
        shown,
        more,
    )
