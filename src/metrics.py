"""Translation metrics as torchmetrics `Metric`s, scored by sacrebleu exactly as its command line scores.

BLEU (Papineni et al. 2002) and chrF (Popović 2015) are corpus statistics: never averages of per-batch
scores. Each metric here keeps sacrebleu's *sufficient statistics* as its state (BLEU: hypothesis and
reference lengths, n-gram matches and totals for n = 1..4; chrF: the hypothesis, reference and matching
counts of every character and word n-gram order), sums them over batches and over DDP processes
(`dist_reduce_fx="sum"`), and turns the sums into the score with sacrebleu's own formula. So
`CorpusBLEU` over any batching equals `sacrebleu.corpus_bleu(hyps, [refs]).score`, and no hypothesis text
has to travel between processes.

sacrebleu exposes the statistics only through its underscored methods `_extract_corpus_statistics` and
`_compute_score_from_stats` (the ones its own `corpus_score` calls); `_SacreBleuStatistics` is the one
place that uses them.

`SequenceAccuracy` is the metric of the synthetic tasks (copy, reverse, sort...): exact match of whole
sequences and token accuracy.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sacrebleu
import torch
from torchmetrics import Metric


class _SacreBleuStatistics(Metric):
    """A sacrebleu metric (`self.scorer`) whose state is its summed sufficient statistics."""

    full_state_update = False
    higher_is_better = True
    scorer: sacrebleu.metrics.base.Metric
    stats: torch.Tensor

    def _init_stats(self, size: int) -> None:
        self.add_state("stats", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")
        self.scorer.num_refs = 1  # one reference per hypothesis: the signature is known before any update

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        """Add detokenized hypotheses and their one reference each."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        if not hypotheses:
            return
        stats = self.scorer._extract_corpus_statistics(list(hypotheses), [list(references)])
        self.stats += torch.tensor(stats, dtype=torch.long).sum(dim=0).to(self.stats.device)

    def score(self) -> sacrebleu.metrics.base.Score:
        """sacrebleu's score object of the statistics so far (`.score`, and for BLEU `.ratio`...)."""
        return self.scorer._compute_score_from_stats([int(value) for value in self.stats.tolist()])

    def compute(self) -> torch.Tensor:
        return torch.tensor(self.score().score, dtype=torch.float)

    @property
    def signature(self) -> str:
        return str(self.scorer.get_signature())


class CorpusBLEU(_SacreBleuStatistics):
    """Corpus BLEU, 0-100. `tokenize`: sacrebleu's tokenizer (`13a` for detokenized text, `none` when both
    sides are tokenized alike); `lowercase`: case-insensitive (the signature says `case:lc`)."""

    def __init__(self, tokenize: str = "13a", lowercase: bool = False) -> None:
        super().__init__()
        self.scorer = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase)
        # [hypothesis length, reference length, matches of 1..4-grams, totals of 1..4-grams]
        self._init_stats(2 + 2 * self.scorer.max_ngram_order)


class CorpusChrF(_SacreBleuStatistics):
    """Corpus chrF, 0-100 (sacrebleu's defaults: character 6-grams, beta 2, no word n-grams)."""

    def __init__(self, lowercase: bool = False) -> None:
        super().__init__()
        self.scorer = sacrebleu.metrics.CHRF(lowercase=lowercase)
        # [hypothesis count, reference count, matches] for every character order, then every word order
        self._init_stats(3 * (self.scorer.char_order + self.scorer.word_order))


class SequenceAccuracy(Metric):
    """Exact match (the share of hypotheses identical to their reference, token for token) and token
    accuracy (tokens equal to the reference's at the same position, over the longer of the two lengths, so
    that a sequence too long or too short loses what it adds or misses). Both in [0, 1]."""

    full_state_update = False
    higher_is_better = True
    exact: torch.Tensor
    sequences: torch.Tensor
    correct_tokens: torch.Tensor
    tokens: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        for name in ("exact", "sequences", "correct_tokens", "tokens"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> None:
        """Add token sequences (lists of token strings) and their references."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        for hypothesis, reference in zip(hypotheses, references, strict=True):
            self.exact += int(list(hypothesis) == list(reference))
            self.correct_tokens += sum(h == r for h, r in zip(hypothesis, reference, strict=False))
            self.tokens += max(len(hypothesis), len(reference))
        self.sequences += len(hypotheses)

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "exact_match": self.exact.float() / self.sequences.clamp(min=1),
            "token_accuracy": self.correct_tokens.float() / self.tokens.clamp(min=1),
        }


@dataclass(frozen=True)
class CorpusScores:
    bleu: float  # 0-100
    chrf: float  # 0-100
    bleu_signature: str
    chrf_signature: str


def corpus_scores(
    hypotheses: list[str], references: list[str], tokenize: str = "13a", lowercase: bool = False
) -> CorpusScores:
    """BLEU and chrF of detokenized hypotheses against one reference each, in one call (the metrics above)."""
    bleu, chrf = CorpusBLEU(tokenize, lowercase), CorpusChrF(lowercase)
    bleu.update(hypotheses, references)
    chrf.update(hypotheses, references)
    return CorpusScores(
        bleu=bleu.score().score,
        chrf=chrf.score().score,
        bleu_signature=bleu.signature,
        chrf_signature=chrf.signature,
    )


def length_bucket_edges(edges: Sequence[int]) -> list[tuple[int, int | None]]:
    """Bucket bounds from edges: [10, 20] -> [(1, 10), (11, 20), (21, None)] (inclusive; None: no upper bound).

    Edges must be increasing positive integers; a ConfigError-worthy mistake raises ValueError (the caller
    names the option)."""
    edges = list(edges)
    if any(not isinstance(e, int) or isinstance(e, bool) or e < 1 for e in edges) or edges != sorted(
        set(edges)
    ):
        raise ValueError(f"bucket edges must be increasing integers >= 1, got {edges}")
    lows = [1, *(e + 1 for e in edges)]
    return list(zip(lows, [*edges, None], strict=True))


class ScoresByLength(Metric):
    """BLEU, chrF, length ratio, exact match and token accuracy per source-length bucket.

    Length is the number of words of the source as written in the file. Each bucket's BLEU and chrF are
    sacrebleu's corpus scores over that bucket's sentences alone (not an average of sentence scores): the
    state holds every bucket's sufficient statistics, summed over batches and DDP processes like
    `CorpusBLEU`'s. `length_ratio` is BLEU's hypothesis/reference length ratio in the bucket (below 1: the
    model stops early). `compute()` returns one dict per bucket; an empty bucket has `sentences: 0` and
    null scores.
    """

    full_state_update = False
    bleu_stats: torch.Tensor
    chrf_stats: torch.Tensor
    accuracy: torch.Tensor
    sentences: torch.Tensor

    def __init__(self, edges: Sequence[int], tokenize: str = "13a", lowercase: bool = False) -> None:
        super().__init__()
        self.bounds = length_bucket_edges(edges)
        self.bleu, self.chrf = CorpusBLEU(tokenize, lowercase), CorpusChrF(lowercase)  # their scorers only
        buckets = len(self.bounds)
        for name, width in (("bleu_stats", self.bleu.stats.numel()), ("chrf_stats", self.chrf.stats.numel())):
            self.add_state(name, default=torch.zeros(buckets, width, dtype=torch.long), dist_reduce_fx="sum")
        # [exact matches, sequences, correct tokens, tokens] per bucket
        self.add_state("accuracy", default=torch.zeros(buckets, 4, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("sentences", default=torch.zeros(buckets, dtype=torch.long), dist_reduce_fx="sum")
        self.has_tokens = False

    def bucket_of(self, length: int) -> int:
        return next(i for i, (low, high) in enumerate(self.bounds) if high is None or length <= high)

    def update(
        self,
        source_lengths: Sequence[int],
        hypotheses: Sequence[str],
        references: Sequence[str],
        hypothesis_tokens: Sequence[Sequence[str]] | None = None,
        reference_tokens: Sequence[Sequence[str]] | None = None,
    ) -> None:
        if not hypotheses:
            return
        buckets = torch.tensor([self.bucket_of(n) for n in source_lengths], device=self.sentences.device)
        for state, metric in ((self.bleu_stats, self.bleu), (self.chrf_stats, self.chrf)):
            stats = metric.scorer._extract_corpus_statistics(list(hypotheses), [list(references)])
            state.index_add_(0, buckets, torch.tensor(stats, dtype=torch.long, device=state.device))
        self.sentences.index_add_(0, buckets, torch.ones_like(buckets))
        if hypothesis_tokens is not None and reference_tokens is not None:
            self.has_tokens = True
            for bucket, hypothesis, reference in zip(
                buckets.tolist(), hypothesis_tokens, reference_tokens, strict=True
            ):
                correct = sum(h == r for h, r in zip(hypothesis, reference, strict=False))
                row = [
                    int(list(hypothesis) == list(reference)),
                    1,
                    correct,
                    max(len(hypothesis), len(reference)),
                ]
                self.accuracy[bucket] += torch.tensor(row, device=self.accuracy.device)

    def compute(self) -> list[dict[str, Any]]:
        rows = []
        for i, (low, high) in enumerate(self.bounds):
            row: dict[str, Any] = {"bucket": f"{low}-{high}" if high is not None else f"{low}+", "low": low}
            row.update(high=high, sentences=int(self.sentences[i]))
            if not row["sentences"]:
                rows.append({**row, "bleu": None, "chrf": None, "length_ratio": None})
                continue
            bleu = self.bleu.scorer._compute_score_from_stats([int(v) for v in self.bleu_stats[i].tolist()])
            chrf = self.chrf.scorer._compute_score_from_stats([int(v) for v in self.chrf_stats[i].tolist()])
            row.update(bleu=bleu.score, chrf=chrf.score, length_ratio=bleu.ratio)
            if self.has_tokens:
                exact, sequences, correct, tokens = self.accuracy[i].tolist()
                row.update(exact_match=exact / max(sequences, 1), token_accuracy=correct / max(tokens, 1))
            rows.append(row)
        return rows


def scores_by_length(
    source_lengths: Sequence[int],
    hypotheses: Sequence[str],
    references: Sequence[str],
    edges: Sequence[int],
    tokenize: str = "13a",
    lowercase: bool = False,
    hypothesis_tokens: Sequence[Sequence[str]] | None = None,
    reference_tokens: Sequence[Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """`ScoresByLength` of one corpus, in one call."""
    metric = ScoresByLength(edges, tokenize, lowercase)
    metric.update(source_lengths, hypotheses, references, hypothesis_tokens, reference_tokens)
    return metric.compute()
