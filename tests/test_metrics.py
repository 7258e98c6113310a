import pytest
import sacrebleu

from src.metrics import corpus_scores

HYPS = ["the cat sat on the mat .", "a dog barks", "", "hello world !"]
REFS = ["the cat sat on a mat .", "the dog barks loudly", "something", "hello world !"]


def test_bleu_equals_sacrebleu_corpus_bleu():
    assert corpus_scores(HYPS, REFS).bleu == sacrebleu.corpus_bleu(HYPS, [REFS]).score


def test_chrf_equals_sacrebleu_corpus_chrf():
    assert corpus_scores(HYPS, REFS).chrf == sacrebleu.corpus_chrf(HYPS, [REFS]).score


def test_corpus_bleu_is_not_the_mean_of_sentence_bleu():
    corpus = corpus_scores(HYPS, REFS).bleu
    mean = sum(sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(HYPS, REFS, strict=True)) / len(HYPS)
    assert abs(corpus - mean) > 1.0


def test_tokenize_none_scores_pre_tokenized_text():
    hyps, refs = ["j ' ai froid ."], ["j ' ai froid ."]
    scores = corpus_scores(hyps, refs, tokenize="none")
    assert scores.bleu == pytest.approx(100.0)
    assert "tok:none" in scores.bleu_signature


def test_signature_names_sacrebleu_settings():
    signature = corpus_scores(HYPS, REFS).bleu_signature
    assert "tok:13a" in signature and "version:" in signature


def test_lowercase_scores_are_case_insensitive_and_say_so():
    hyps, refs = ["je suis fatigué ."], ["Je suis fatigué ."]
    assert corpus_scores(hyps, refs).bleu < 100.0
    scores = corpus_scores(hyps, refs, lowercase=True)
    assert scores.bleu == pytest.approx(100.0)
    assert "case:lc" in scores.bleu_signature and "case:lc" in scores.chrf_signature
