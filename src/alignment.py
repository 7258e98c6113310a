"""Word alignment from attention: the files, word-level attention, link extraction, symmetrisation, AER.

Everything here works on plain data and tensors (`src.aligner` runs the model):

* Files. Sentence pairs, one per line, as `source<TAB>target` or `source ||| target` (fast_align, eflomal,
  awesome-align); the words are the whitespace-separated tokens of each side. Gold links, one line per
  pair: `i-j` is a sure link, `ipj` a possible one, source index first, 1-based unless told otherwise.
  Predicted links are written in Pharaoh format: `i-j`, 0-based, source index first.
* Word level. A model reads its own tokens (sentencepiece pieces, split-off punctuation, characters);
  `word_attention` combines the attention of a word's tokens into one weight per (target word, source
  word): the sum over a source word's tokens (the attention mass the target token puts on the word) and the
  mean over a target word's tokens (so each target word keeps one distribution over the source).
* Extraction (`extract_links`, option `method`):
  - `argmax`: each target word links to its source word of highest weight, read at the decoding step that
    *predicts* the word (Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural
    Machine Translation", section 5.4, which scores attention this way against gold alignments).
  - `threshold`: every (source, target) word pair whose weight is at least `threshold`: a target word may
    link to several source words, or to none (the rule awesome-align applies to its alignment
    probabilities; Dou & Neubig 2021, "Word Alignment by Fine-tuning Embeddings on Parallel Corpora").
  - `shift`: argmax read at the decoding step that *receives* the word as input, one step later (Chen et
    al. 2020, "Accurate Word Alignment Induction from Neural Machine Translation", Shift-Att): the step
    that predicts y_t has not seen y_t yet, the step that reads it has.
* Symmetrisation of a source->target and a target->source model (`symmetrize`): intersection (precise),
  union (complete), grow-diag-final (Koehn, Och & Marcu 2003, "Statistical Phrase-Based Translation"): the
  intersection, grown into neighbouring union links that align a still unaligned word, then any union link
  of an unaligned word.
* Alignment Error Rate (Och & Ney 2003, "A Systematic Comparison of Various Statistical Alignment Models"),
  with A the predicted links, S the sure and P the possible gold links (P includes S):
  precision = |A ∩ P| / |A|, recall = |A ∩ S| / |S|, AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|),
  summed over the corpus, reported in percent. Lower AER is better.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from src.errors import DataError

Link = tuple[int, int]  # (source word, target word), 0-based
Pair = tuple[list[str], list[str]]  # (source words, target words)
Choice = int | Literal["mean"]  # a layer or head index, or the mean over all of them

METHODS = ("argmax", "threshold", "shift")
SYMMETRIZATIONS = ("intersection", "union", "grow-diag-final")
PAIR_FORMATS = ("auto", "tsv", "fast_align")

_BOM = b"\xef\xbb\xbf"
_GOLD_LINK = re.compile(r"(\d+)([-p])(\d+)")
_PHARAOH_LINK = re.compile(r"(\d+)-(\d+)")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


# ---------------------------------------------------------------------------------------------- files


def read_pairs(path: str | Path, pair_format: str = "auto", option: str = "input") -> list[Pair]:
    """Sentence pairs, one per line: `source<TAB>target` (tsv) or `source ||| target` (fast_align).

    `auto` decides from the first line (`|||` in it: fast_align, else tsv); every line must then follow
    that format and have words on both sides, or a `DataError` names the file and the line.
    """
    if pair_format not in PAIR_FORMATS:
        raise ValueError(f"pair_format must be one of {PAIR_FORMATS}, got {pair_format!r}")
    path = Path(path)
    lines = _read_lines(path, option, "sentence pairs")
    given = f"{option}_format={pair_format}"
    if pair_format == "auto":
        pair_format = "fast_align" if "|||" in lines[0] else "tsv"
        given = f"the format of line 1, as {option}_format=auto reads it"
    separator, shape = ("\t", "source<TAB>target") if pair_format == "tsv" else ("|||", "source ||| target")
    pairs = []
    for number, line in enumerate(lines, start=1):
        sides = line.split(separator)
        if len(sides) != 2:
            found = f"{len(sides) - 1} separators" if len(sides) > 2 else "no separator"
            raise DataError(
                f"{path}:{number}: expected '{shape}' ({given}), found {found}. "
                "Give one sentence pair per line, all in one format."
            )
        src, tgt = sides[0].split(), sides[1].split()
        for side, words in (("source", src), ("target", tgt)):
            if not words:
                raise DataError(f"{path}:{number}: the {side} side has no words; there is nothing to align.")
        pairs.append((src, tgt))
    return pairs


def transpose(links: set[Link] | frozenset[Link]) -> set[Link]:
    """Links `(i, j)` as `(j, i)`: the same alignment read from the other side (a target -> source model's
    links as (source, target) links, or a file's links for a model trained with `data.reverse`)."""
    return {(j, i) for i, j in links}


@dataclass(frozen=True)
class GoldLinks:
    """The gold links of one pair: `sure` (S) and `possible` (P, which includes every sure link)."""

    sure: frozenset[Link]
    possible: frozenset[Link]

    def transposed(self) -> "GoldLinks":
        """The same links with target index first: the gold of the reversed pair."""
        return GoldLinks(frozenset(transpose(self.sure)), frozenset(transpose(self.possible)))


def read_gold(path: str | Path, index_base: int = 1, option: str = "gold") -> list[GoldLinks]:
    """Gold links, one line per pair (an empty line: no links): `i-j` sure, `ipj` possible, source index
    first, counted from `index_base` (1 in the shared-task files, 0 in Pharaoh files)."""
    if index_base not in (0, 1):
        raise ValueError(f"index_base must be 0 or 1, got {index_base!r}")
    path = Path(path)
    gold = []
    for number, line in enumerate(_read_lines(path, option, "gold links"), start=1):
        sure, possible = set(), set()
        for token in line.split():
            match = _GOLD_LINK.fullmatch(token)
            if match is None:
                raise DataError(
                    f"{path}:{number}: {token!r} is not a gold link. Write i-j for a sure link and ipj for a "
                    f"possible one, source word first, counted from {index_base} (gold_index_base)."
                )
            i, j = int(match[1]) - index_base, int(match[3]) - index_base
            if i < 0 or j < 0:
                raise DataError(
                    f"{path}:{number}: link {token} has an index below {index_base}, but "
                    f"gold_index_base={index_base}. Set gold_index_base=0 for a file counted from 0."
                )
            (sure if match[2] == "-" else possible).add((i, j))
        gold.append(GoldLinks(sure=frozenset(sure), possible=frozenset(sure | possible)))
    return gold


def check_gold(
    gold: Sequence[GoldLinks],
    pairs: Sequence[Pair],
    gold_path: str | Path,
    pairs_path: str | Path,
    index_base: int = 1,
) -> None:
    """A `DataError` unless there is one gold line per pair and every link is inside its pair."""
    if len(gold) != len(pairs):
        line = min(len(gold), len(pairs)) + 1
        if len(gold) < len(pairs):
            missing = f"line {line} of {pairs_path} has no gold line"
        else:
            missing = f"line {line} of {gold_path} has no sentence pair"
        raise DataError(
            f"{gold_path} has {len(gold)} lines but {pairs_path} has {len(pairs)} sentence pairs: {missing}. "
            "Give one gold line per pair, in the same order (an empty line for a pair without links)."
        )
    for number, (links, (src, tgt)) in enumerate(zip(gold, pairs, strict=True), start=1):
        for i, j in sorted(links.possible):
            if i >= len(src) or j >= len(tgt):
                raise DataError(
                    f"{gold_path}:{number}: link {i + index_base}-{j + index_base} is out of range: the pair "
                    f"on line {number} of {pairs_path} has {len(src)} source and {len(tgt)} target words, "
                    f"counted from {index_base}. Check gold_index_base and that both files are in the same "
                    "order."
                )


def format_pharaoh(links: Iterable[Link]) -> str:
    """`i-j` links (0-based, source first), sorted, separated by spaces."""
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


def read_pharaoh(path: str | Path, option: str = "alignments") -> list[set[Link]]:
    """0-based `i-j` links (what `format_pharaoh` writes, and other aligners too), one line per pair."""
    path = Path(path)
    alignments = []
    for number, line in enumerate(_read_lines(path, option, "alignments"), start=1):
        links = set()
        for token in line.split():
            match = _PHARAOH_LINK.fullmatch(token)
            if match is None:
                raise DataError(
                    f"{path}:{number}: {token!r} is not a Pharaoh link i-j (0-based, source first)."
                )
            links.add((int(match[1]), int(match[2])))
        alignments.append(links)
    return alignments


def _read_lines(path: Path, option: str, what: str) -> list[str]:
    """The lines of a UTF-8 file (a byte order mark and CRLF endings accepted); invalid UTF-8 is reported
    with its line number."""
    if not path.is_file():
        raise DataError(f"{option}={path}: no such file. Name a file of {what}, one line per sentence pair.")
    lines = []
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if number == 1:
                raw = raw.removeprefix(_BOM)
            try:
                lines.append(raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8"))
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{number}: invalid UTF-8 at byte {err.start}. Re-encode the file as UTF-8."
                ) from None
    if not lines:
        raise DataError(f"{option}={path}: the file is empty. Name a file of {what}.")
    return lines


# ------------------------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class AlignmentScores:
    """Corpus-level AER, precision and recall in percent, and the counts they come from."""

    aer: float
    precision: float
    recall: float
    links: int  # |A|
    sure: int  # |S|
    possible: int  # |P|


def alignment_scores(predicted: Sequence[Iterable[Link]], gold: Sequence[GoldLinks]) -> AlignmentScores:
    """AER, precision and recall of `predicted` against `gold` (Och & Ney 2003), counted over all pairs.

    A ratio with nothing to count (no predicted links for precision, no sure links for recall) is 0.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted alignments for {len(gold)} gold ones")
    a = s = p = a_and_s = a_and_p = 0
    for links, truth in zip(predicted, gold, strict=True):
        links = set(links)
        a, s, p = a + len(links), s + len(truth.sure), p + len(truth.possible)
        a_and_s += len(links & truth.sure)
        a_and_p += len(links & truth.possible)
    return AlignmentScores(
        aer=100 * (1 - _ratio(a_and_s + a_and_p, a + s)),
        precision=100 * _ratio(a_and_p, a),
        recall=100 * _ratio(a_and_s, s),
        links=a,
        sure=s,
        possible=p,
    )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


# --------------------------------------------------------------------------------- word-level attention


@dataclass
class TokenAttention:
    """One pair's cross-attention over the model's tokens, and the file word each token belongs to.

    weights: `[layers, heads, tgt_tokens + 1, src_tokens]`; row t is the decoding step that reads the t-th
        token of `<bos> y` and predicts the t-th token of `y <eos>`. Layers: the decoder layers with a
        cross-attention (1 for a recurrent decoder).
    src_words, tgt_words: per token, the index of its word in the file, or None for a token of no word
        (CharTokenizer's space between two words).
    """

    weights: Tensor
    src_words: list[int | None]
    tgt_words: list[int | None]
    num_src_words: int
    num_tgt_words: int

    def __post_init__(self) -> None:
        expected = (len(self.tgt_words) + 1, len(self.src_words))
        if self.weights.dim() != 4 or tuple(self.weights.shape[2:]) != expected:
            raise ValueError(
                f"weights {tuple(self.weights.shape)} do not fit {len(self.src_words)} source and "
                f"{len(self.tgt_words)} target tokens: expected [layers, heads, {expected[0]}, {expected[1]}]"
            )


def word_attention(attention: TokenAttention, shift: bool = False) -> Tensor:
    """The attention between the file's words: `[layers, heads, tgt_words, src_words]`.

    Target token k is read at the step that predicts it (row k), or with `shift` at the step that receives
    it as input (row k + 1, Chen et al. 2020). A source word gets the sum of its tokens' weights, a target
    word the mean of its tokens' rows; tokens of no word drop out, and a word without tokens gets zeros.
    """
    weights = attention.weights.float()
    rows = weights[:, :, 1:] if shift else weights[:, :, :-1]  # [layers, heads, tgt_tokens, src_tokens]
    src_words = _membership(attention.src_words, attention.num_src_words)  # [src_tokens, src_words]
    tgt_words = _membership(attention.tgt_words, attention.num_tgt_words).T  # [tgt_words, tgt_tokens]
    tgt_words = tgt_words / tgt_words.sum(dim=1, keepdim=True).clamp(min=1)  # mean over a word's tokens
    return tgt_words @ rows @ src_words


def _membership(owners: list[int | None], num_words: int) -> Tensor:
    """`[tokens, words]`: 1 where the token belongs to the word."""
    matrix = torch.zeros(len(owners), num_words)
    for token, word in enumerate(owners):
        if word is not None:
            matrix[token, word] = 1.0
    return matrix


def select_attention(weights: Tensor, layer: Choice = -1, head: Choice = "mean") -> Tensor:
    """`[layers, heads, tgt, src]` -> `[tgt, src]`: one layer (an index, negative from the last) or their
    mean, then one head or their mean."""
    weights = weights.mean(dim=0) if layer == "mean" else weights[layer]
    return weights.mean(dim=0) if head == "mean" else weights[head]


def extract_links(weights: Tensor, method: str = "argmax", threshold: float = 0.3) -> set[Link]:
    """Links from word-level weights `[tgt_words, src_words]` (see the module docstring for the methods;
    `shift` differs from `argmax` only in the rows `word_attention` reads). A target word whose row is all
    zero (it has no tokens) gets no link."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if weights.numel() == 0:
        return set()
    if method == "threshold":
        tgt, src = (weights >= threshold).nonzero(as_tuple=True)
        return {(int(i), int(j)) for i, j in zip(src, tgt, strict=True)}
    best = weights.argmax(dim=1).tolist()  # [tgt_words]
    has_tokens = (weights.sum(dim=1) > 0).tolist()
    return {(i, j) for j, (i, real) in enumerate(zip(best, has_tokens, strict=True)) if real}


def align(
    attention: TokenAttention,
    method: str = "argmax",
    threshold: float = 0.3,
    layer: Choice = -1,
    head: Choice = "mean",
) -> set[Link]:
    """One pair's links, as `method` extracts them from the chosen layer and head."""
    weights = word_attention(attention, shift=method == "shift")
    return extract_links(select_attention(weights, layer, head), method, threshold)


@dataclass
class LayerHeadScores:
    """The scores of every (layer, head) choice: layers and heads list the choices (indices, then "mean"
    when there are several)."""

    layers: list[Choice]
    heads: list[Choice]
    scores: dict[tuple[Choice, Choice], AlignmentScores]

    def best(self) -> tuple[Choice, Choice]:
        """The (layer, head) of lowest AER (the first of equals)."""
        return min(self.scores, key=lambda choice: self.scores[choice].aer)

    def aer_grid(self) -> list[list[float]]:
        """AER `[layer choices][head choices]`."""
        return [[self.scores[layer, head].aer for head in self.heads] for layer in self.layers]


def scores_by_layer_head(
    attentions: Sequence[TokenAttention],
    gold: Sequence[GoldLinks],
    method: str = "argmax",
    threshold: float = 0.3,
) -> LayerHeadScores:
    """AER, precision and recall for every layer and head, each layer's mean over heads, each head's mean
    over layers and the mean of all."""
    num_layers, num_heads = attentions[0].weights.shape[:2]
    words = [word_attention(attention, shift=method == "shift") for attention in attentions]
    layers: list[Choice] = [*range(num_layers), *(["mean"] if num_layers > 1 else [])]
    heads: list[Choice] = [*range(num_heads), *(["mean"] if num_heads > 1 else [])]
    scores = {
        (layer, head): alignment_scores(
            [extract_links(select_attention(w, layer, head), method, threshold) for w in words], gold
        )
        for layer in layers
        for head in heads
    }
    return LayerHeadScores(layers=layers, heads=heads, scores=scores)


def format_layer_head_table(grid: LayerHeadScores) -> str:
    """AER by layer (rows) and head (columns) as a Markdown table; the best cell in bold."""
    best = grid.best()
    header = "| layer \\ head | " + " | ".join(str(head) for head in grid.heads) + " |"
    lines = [header, "|" + "---|" * (len(grid.heads) + 1)]
    for layer in grid.layers:
        cells = []
        for head in grid.heads:
            cell = f"{grid.scores[layer, head].aer:.1f}"
            cells.append(f"**{cell}**" if (layer, head) == best else cell)
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- symmetrisation


def symmetrize(forward: set[Link], reverse: set[Link], how: str = "grow-diag-final") -> set[Link]:
    """Combine the links of a source->target model and of a target->source model, both given as
    (source, target) links: `intersection`, `union` or `grow-diag-final`."""
    if how == "intersection":
        return forward & reverse
    if how == "union":
        return forward | reverse
    if how == "grow-diag-final":
        return grow_diag_final(forward, reverse)
    raise ValueError(f"how must be one of {SYMMETRIZATIONS}, got {how!r}")


def grow_diag_final(forward: set[Link], reverse: set[Link]) -> set[Link]:
    """grow-diag-final (Koehn, Och & Marcu 2003; the procedure of Moses' train-model.perl):

    A = forward ∩ reverse
    grow-diag: until nothing changes, for each link of A in (source, target) order, add each of its
        eight neighbours that is in forward ∪ reverse and aligns a source or a target word A leaves
        unaligned
    final: then for forward and for reverse, add each of its links that aligns a word A leaves
        unaligned
    """
    union = forward | reverse
    alignment = forward & reverse
    src_aligned = {i for i, _ in alignment}
    tgt_aligned = {j for _, j in alignment}

    def add_if_new_word(link: Link) -> bool:
        if link in alignment or (link[0] in src_aligned and link[1] in tgt_aligned):
            return False
        alignment.add(link)
        src_aligned.add(link[0])
        tgt_aligned.add(link[1])
        return True

    grown = True
    while grown:
        grown = False
        for i, j in sorted(alignment):
            for di, dj in _NEIGHBOURS:
                neighbour = (i + di, j + dj)
                if neighbour in union and add_if_new_word(neighbour):
                    grown = True
    for links in (forward, reverse):
        for link in sorted(links):
            add_if_new_word(link)
    return alignment
