"""Corpus-level translation metrics, computed by sacrebleu exactly as its command line does.

BLEU and chrF are corpus statistics: they must be computed once over all hypotheses, never averaged
over batches. The BLEU logged during training equals `sacrebleu.corpus_bleu(hyps, [refs]).score`.
"""

from dataclasses import dataclass

import sacrebleu


@dataclass(frozen=True)
class CorpusScores:
    bleu: float  # 0-100
    chrf: float  # 0-100
    bleu_signature: str
    chrf_signature: str


def corpus_scores(
    hypotheses: list[str], references: list[str], tokenize: str = "13a", lowercase: bool = False
) -> CorpusScores:
    """Score detokenized hypotheses against one reference each.

    `tokenize` is sacrebleu's BLEU tokenizer: `13a` (its default) for detokenized text, `none` when
    both sides are already tokenized the same way. `lowercase` makes the scores case-insensitive (the
    signatures then say `case:lc`): used when the model's tokenizer lowercases its targets.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase)
    chrf = sacrebleu.metrics.CHRF(lowercase=lowercase)
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return CorpusScores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )
