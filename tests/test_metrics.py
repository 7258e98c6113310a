import pytest
import sacrebleu
import torch

from src.metrics import (
    CorpusBLEU,
    CorpusChrF,
    SequenceAccuracy,
    corpus_scores,
    length_bucket_edges,
    scores_by_length,
)

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


BATCHES = [(HYPS[:1], REFS[:1]), (HYPS[1:3], REFS[1:3]), ([], []), (HYPS[3:], REFS[3:])]
CASED = ["The Cat sat .", "A dog barks", "Hello world !"]
CASED_REFS = ["the cat sat .", "The dog barks loudly", "Hello World !"]


@pytest.mark.parametrize("tokenize", ["13a", "none"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_bleu_metric_over_batches_equals_sacrebleu(tokenize, lowercase):
    metric = CorpusBLEU(tokenize, lowercase)
    for hyps, refs in [*BATCHES, (CASED, CASED_REFS)]:
        metric.update(hyps, refs)
    expected = sacrebleu.corpus_bleu(
        HYPS + CASED, [REFS + CASED_REFS], tokenize=tokenize, lowercase=lowercase
    )
    assert float(metric.compute()) == pytest.approx(expected.score, abs=1e-5)
    scorer = sacrebleu.BLEU(tokenize=tokenize, lowercase=lowercase)
    scorer.corpus_score(HYPS, [REFS])
    assert metric.signature == str(scorer.get_signature())
    metric.reset()
    metric.update(HYPS[:1], REFS[:1])
    assert float(metric.compute()) == pytest.approx(
        sacrebleu.corpus_bleu(HYPS[:1], [REFS[:1]]).score, abs=1e-5
    )


@pytest.mark.parametrize("lowercase", [False, True])
def test_chrf_metric_over_batches_equals_sacrebleu(lowercase):
    metric = CorpusChrF(lowercase)
    for hyps, refs in [*BATCHES, (CASED, CASED_REFS)]:
        metric.update(hyps, refs)
    expected = sacrebleu.CHRF(lowercase=lowercase).corpus_score(HYPS + CASED, [REFS + CASED_REFS]).score
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-4)


def test_metric_states_are_summed_sufficient_statistics():
    """What DDP sums: two halves' states add up to the whole corpus's."""
    whole, first, second = CorpusBLEU(), CorpusBLEU(), CorpusBLEU()
    whole.update(HYPS, REFS)
    first.update(HYPS[:2], REFS[:2])
    second.update(HYPS[2:], REFS[2:])
    assert torch.equal(first.stats + second.stats, whole.stats)
    assert first.stats.dtype == torch.long  # exact counts: no float rounding in the sum


def test_exact_match_is_one_for_identical_and_zero_for_one_wrong_token():
    metric = SequenceAccuracy()
    metric.update([["1", "2", "3"]], [["1", "2", "3"]])
    assert float(metric.compute()["exact_match"]) == 1.0
    metric.reset()
    metric.update([["1", "2", "4"]], [["1", "2", "3"]])
    result = metric.compute()
    assert float(result["exact_match"]) == 0.0
    assert float(result["token_accuracy"]) == pytest.approx(2 / 3)


def test_token_accuracy_counts_missing_and_extra_tokens_as_wrong():
    metric = SequenceAccuracy()
    metric.update([["1", "2"], ["1", "2", "3", "9"]], [["1", "2", "3"], ["1", "2", "3"]])
    result = metric.compute()
    assert float(result["exact_match"]) == 0.0
    assert float(result["token_accuracy"]) == pytest.approx((2 + 3) / (3 + 4))


def test_length_bucket_edges_cover_every_length():
    assert length_bucket_edges([10, 20]) == [(1, 10), (11, 20), (21, None)]
    assert length_bucket_edges([]) == [(1, None)]
    for bad in ([20, 10], [0, 5], [5, 5], [2.5]):
        with pytest.raises(ValueError, match="increasing integers"):
            length_bucket_edges(bad)


def test_each_buckets_bleu_is_sacrebleu_on_that_buckets_lines():
    sources = ["a b", "a b c d e", "a", "a b c d e f g h i j k l"]  # 2, 5, 1 and 12 words
    rows = scores_by_length([len(s.split()) for s in sources], HYPS, REFS, [2, 5, 8])
    assert [(row["bucket"], row["sentences"]) for row in rows] == [
        ("1-2", 2),
        ("3-5", 1),
        ("6-8", 0),
        ("9+", 1),
    ]
    first = [0, 2]  # the sentences of 1-2 words
    expected = sacrebleu.corpus_bleu([HYPS[i] for i in first], [[REFS[i] for i in first]])
    assert rows[0]["bleu"] == pytest.approx(expected.score)
    assert rows[0]["length_ratio"] == pytest.approx(expected.ratio)
    assert rows[1]["bleu"] == pytest.approx(sacrebleu.corpus_bleu([HYPS[1]], [[REFS[1]]]).score)
    assert rows[1]["chrf"] == pytest.approx(sacrebleu.corpus_chrf([HYPS[1]], [[REFS[1]]]).score)
    assert rows[2]["bleu"] is None and rows[2]["chrf"] is None  # an empty bucket: no score, not 0
    assert rows[3]["chrf"] == pytest.approx(100.0)  # "hello world !" is its own reference


def test_buckets_report_exact_match_when_given_tokens():
    tokens = [["1", "2"], ["3"]]
    rows = scores_by_length(
        [1, 4],
        ["1 2", "3"],
        ["1 2", "4"],
        [2],
        hypothesis_tokens=tokens,
        reference_tokens=[["1", "2"], ["4"]],
    )
    assert [row["exact_match"] for row in rows] == [1.0, 0.0]
