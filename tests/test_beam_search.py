"""Beam search against toy models, and the option checks of `SequenceGenerator`."""

import itertools
import math

import pytest
import torch

from src.decoding import SequenceGenerator, beam_search, greedy_search
from src.errors import ConfigError
from tests.toy_models import EOS, GREEDY_TRAP, A, B, RandomToyModel, TableToyModel, random_batch, rescore

MAX_LEN_A, MAX_LEN_B = 1.5, 2
ONE_SOURCE = (torch.tensor([[6, 7]]), torch.tensor([2]))


def sentence(src: torch.Tensor, src_len: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence i of a batch alone, without padding."""
    return src[i : i + 1, : src_len[i]], src_len[i : i + 1]


def gnmt_length_penalty(hyp_len: int, alpha: float) -> float:
    return ((5 + hyp_len + 1) / 6) ** alpha  # |Y| counts <eos>


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_one_equals_greedy(seed):
    model = RandomToyModel(seed, eos_bias=-1.0)
    src, src_len = random_batch(seed)
    greedy = greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B)
    beam = beam_search(model, src, src_len, 1, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    assert [[h.tokens for h in hyps] for hyps in beam] == [[h.tokens for h in hyps] for hyps in greedy]
    assert [[h.log_prob for h in hyps] for hyps in beam] == [[h.log_prob for h in hyps] for hyps in greedy]


@pytest.mark.parametrize("seed", range(4))
def test_beam_best_log_prob_is_never_worse_than_greedy(seed):
    model = RandomToyModel(seed, eos_bias=-1.0)
    src, src_len = random_batch(seed)
    greedy = greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B)
    beam = beam_search(model, src, src_len, 5, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    for [best], [greedy_hyp] in zip(beam, greedy, strict=True):
        assert best.log_prob >= greedy_hyp.log_prob - 1e-5


def test_n_best_lists_are_sorted_and_distinct():
    model = RandomToyModel(0, eos_bias=-1.0)
    src, src_len = random_batch(0)
    for hyps in beam_search(model, src, src_len, 5, n_best=5, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B):
        assert len(hyps) == 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 5


@pytest.mark.parametrize("beam_size", [2, 3])
def test_beam_finds_the_best_sequence_that_greedy_misses(beam_size):
    model = TableToyModel(GREEDY_TRAP)
    [[greedy]] = greedy_search(model, *ONE_SOURCE, 0.0, 5)
    [[best]] = beam_search(model, *ONE_SOURCE, beam_size, max_len_a=0.0, max_len_b=5)
    assert greedy.tokens == [A]
    assert best.tokens == [B]
    assert best.log_prob == pytest.approx(math.log(0.4 * 0.9))


def test_search_goes_on_after_the_best_hypothesis_ends():
    # the empty output is the best and ends at once; its slot is refilled and A <eos>, B <eos> still end
    model = TableToyModel({(): {EOS: 0.4, A: 0.35, B: 0.25}})
    [hyps] = beam_search(model, *ONE_SOURCE, 2, n_best=2, max_len_a=0.0, max_len_b=5)
    assert [h.tokens for h in hyps] == [[], [A]]
    assert [h.log_prob for h in hyps] == pytest.approx([math.log(0.4), math.log(0.35)])


def test_beam_search_stops_once_every_sentence_is_done():
    model = TableToyModel(GREEDY_TRAP)
    beam_search(model, torch.tensor([[4, 5], [6, 0]]), torch.tensor([2, 1]), 2, max_len_a=0.0, max_len_b=50)
    assert model.calls == 2  # both beams end at the second step: not 51 steps


# <eos> tops the beam at once (0.5); A and B go on, every later step x 0.9 at best
TOP_ENDS_FIRST = {
    (): {EOS: 0.5, A: 0.3, B: 0.2},
    **{
        prefix: {A: 0.9, B: 0.05, EOS: 0.05}
        for n in range(1, 11)
        for prefix in itertools.product((A, B), repeat=n)
    },
}


def test_a_sentence_stops_once_no_live_hypothesis_can_beat_its_best():
    model = TableToyModel(TOP_ENDS_FIRST)
    [[best]] = beam_search(model, *ONE_SOURCE, 2, max_len_a=0.0, max_len_b=10)
    assert best.tokens == [] and best.log_prob == pytest.approx(math.log(0.5))
    assert model.calls == 1  # the live ones score at most log 0.3: 1 step, not up to 11
    two_best = TableToyModel(TOP_ENDS_FIRST)  # the second best is not known after one step
    [hyps] = beam_search(two_best, *ONE_SOURCE, 2, n_best=2, max_len_a=0.0, max_len_b=10)
    assert hyps[0].tokens == [] and len(hyps) == 2 and two_best.calls > 1


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.0), (0.6, 0.0), (0.6, 0.3)])
def test_stopping_early_returns_the_best_hypotheses_of_the_search_run_to_the_end(seed, alpha, beta):
    """With n_best = beam a sentence runs until `beam` hypotheses have finished (no early stop): its best
    ones are those of the search that stops as soon as they can no longer be beaten (here the early stop
    spares up to 74 % of the decoded rows with alpha = 0, 68 % with alpha = 0.6, 55 % with beta = 0.3)."""
    model = RandomToyModel(seed)
    src, src_len = random_batch(seed)
    options = dict(length_penalty=alpha, coverage_penalty=beta, max_len_a=3.0, max_len_b=4)
    full = beam_search(model, src, src_len, 4, n_best=4, **options)
    for n_best in (1, 2):
        early = beam_search(model, src, src_len, 4, n_best=n_best, **options)
        for stopped, complete in zip(early, full, strict=True):
            assert [h.tokens for h in stopped] == [h.tokens for h in complete[:n_best]]
            assert [h.score for h in stopped] == pytest.approx([h.score for h in complete[:n_best]])


# Short: A <eos>, p = 0.5. Long: B B <eos>, p = 0.48 * 0.95 = 0.456.
SHORT_OR_LONG = {
    (): {A: 0.5, B: 0.48, EOS: 0.02},
    (A,): {EOS: 1.0},
    (B,): {B: 0.95, EOS: 0.05},
    (B, B): {EOS: 1.0},
}


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5, 3.0])
def test_length_penalty_score_follows_the_gnmt_formula(alpha):
    hyps = beam_search(
        TableToyModel(SHORT_OR_LONG),
        *ONE_SOURCE,
        2,
        n_best=2,
        length_penalty=alpha,
        max_len_a=0.0,
        max_len_b=5,
    )[0]
    assert sorted(h.tokens for h in hyps) == [[A], [B, B]]
    for h in hyps:
        assert h.score == pytest.approx(h.log_prob / gnmt_length_penalty(len(h.tokens), alpha))
    assert hyps[0].score >= hyps[1].score


def test_length_penalty_moves_the_ranking_toward_longer_hypotheses():
    def best(alpha: float) -> list[int]:
        model = TableToyModel(SHORT_OR_LONG)
        return beam_search(model, *ONE_SOURCE, 2, length_penalty=alpha, max_len_a=0.0, max_len_b=5)[0][
            0
        ].tokens

    # log(0.5) / lp(2) vs log(0.456) / lp(3): -0.693 vs -0.785 at alpha 0, -0.550 vs -0.510 at alpha 1.5
    assert best(0.0) == [A]
    assert best(1.5) == [B, B]


# X attends to source token 0 only, twice (coverage 1.9, 0.1); Y covers both (1.0, 1.0) but is less likely.
X, Y = A, B
COVERAGE_PROBS = {(): {X: 0.55, Y: 0.4, EOS: 0.05}, (X,): {EOS: 0.9, X: 0.1}, (Y,): {EOS: 0.9, Y: 0.1}}
COVERAGE_ATTENTION = {(): [1.0, 0.0], (X,): [0.9, 0.1], (Y,): [0.0, 1.0]}


def test_coverage_penalty_prefers_the_hypothesis_that_covers_the_source():
    def search(beta: float) -> list:
        model = TableToyModel(COVERAGE_PROBS, COVERAGE_ATTENTION)
        return beam_search(
            model, *ONE_SOURCE, 2, n_best=2, coverage_penalty=beta, max_len_a=0.0, max_len_b=5
        )[0]

    assert search(0.0)[0].tokens == [X]
    hyps = search(1.0)
    assert [h.tokens for h in hyps] == [[Y], [X]]
    assert hyps[0].score == pytest.approx(math.log(0.4 * 0.9))  # log min(1, 1) + log min(1, 1) = 0
    assert hyps[1].score == pytest.approx(math.log(0.55 * 0.9) + math.log(0.1))


def test_coverage_penalty_is_skipped_without_attention():
    model = TableToyModel(COVERAGE_PROBS, attention=None)
    [hyps] = beam_search(model, *ONE_SOURCE, 2, n_best=2, coverage_penalty=1.0, max_len_a=0.0, max_len_b=5)
    assert [h.tokens for h in hyps] == [[X], [Y]]
    assert all(h.attention is None and h.score == h.log_prob for h in hyps)


@pytest.mark.parametrize("seed", range(3))
def test_beam_batched_equals_per_sentence(seed):
    model = RandomToyModel(seed, eos_bias=-1.0)
    src, src_len = random_batch(seed)
    options = dict(
        n_best=4, length_penalty=1.0, coverage_penalty=0.2, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B
    )
    batched = beam_search(model, src, src_len, 4, **options)
    for i, hyps in enumerate(batched):
        alone = beam_search(model, *sentence(src, src_len, i), 4, **options)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-5)
        for h, a in zip(hyps, alone, strict=True):
            torch.testing.assert_close(h.attention, a.attention)


def test_beam_respects_min_len():
    model = RandomToyModel(0, eos_bias=8.0)  # <eos> is by far the likeliest token
    src, src_len = random_batch(0)
    options = dict(n_best=3, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    assert any(len(h.tokens) < 3 for hyps in beam_search(model, src, src_len, 3, **options) for h in hyps)
    for hyps in beam_search(model, src, src_len, 3, min_len=3, **options):
        assert all(len(h.tokens) >= 3 for h in hyps)


def test_beam_max_length_is_floor_of_a_times_src_len_plus_b():
    model = RandomToyModel(0, eos_bias=-50.0)  # only the length limit ends a hypothesis
    src, src_len = random_batch(0)
    hyps = beam_search(model, src, src_len, 3, n_best=3, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    for n_best, n in zip(hyps, src_len.tolist(), strict=True):
        assert [len(h.tokens) for h in n_best] == [math.floor(1.5 * n + 2)] * 3


def test_beam_attention_has_a_row_per_output_and_a_column_per_real_source_token():
    model = RandomToyModel(0, heads=2, eos_bias=-1.0)
    src, src_len = random_batch(0)
    hyps = beam_search(model, src, src_len, 3, n_best=3, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    for n_best, n in zip(hyps, src_len.tolist(), strict=True):
        for h in n_best:
            assert h.attention.shape == (2, len(h.tokens) + 1, n)
            assert h.attention.dtype == torch.float32
            torch.testing.assert_close(h.attention.sum(dim=2), torch.ones(2, len(h.tokens) + 1))


@pytest.mark.parametrize("seed", range(3))
def test_hypotheses_match_teacher_forcing_when_the_beam_prunes(seed):
    # wrong reordering of the decoder state or the attention rows would show up as a mismatch here
    model = RandomToyModel(seed, eos_bias=-1.0)
    src, src_len = random_batch(seed)
    for i, hyps in enumerate(
        beam_search(model, src, src_len, 3, n_best=3, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    ):
        for h in hyps:
            log_prob, attention = rescore(model, *sentence(src, src_len, i), h.tokens)
            assert h.log_prob == pytest.approx(log_prob, abs=1e-4)
            torch.testing.assert_close(h.attention, attention)


def test_beam_equals_exhaustive_search_on_short_sequences():
    # 3 words and at most 3 tokens: 1 + 3 + 9 + 27 = 40 outputs, all kept by a beam of 40
    model = RandomToyModel(1, vocab_size=7, eos_bias=-0.5)
    src, src_len = random_batch(1, batch=3, vocab_size=7, max_src_len=4)
    words = [4, 5, 6]
    everything = [list(seq) for length in range(4) for seq in itertools.product(words, repeat=length)]
    beam = beam_search(model, src, src_len, 40, n_best=40, max_len_a=0.0, max_len_b=3)
    for i, hyps in enumerate(beam):
        scored = sorted(
            ((rescore(model, *sentence(src, src_len, i), seq)[0], seq) for seq in everything), reverse=True
        )
        assert [h.tokens for h in hyps] == [seq for _, seq in scored]
        assert [h.log_prob for h in hyps] == pytest.approx([log_prob for log_prob, _ in scored], abs=1e-4)


def test_generator_with_beam_one_and_no_penalty_runs_greedy_search():
    model = RandomToyModel(0, eos_bias=-1.0)
    src, src_len = random_batch(0)
    generated = SequenceGenerator(max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)(model, src, src_len)
    expected = greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B)
    assert [[(h.tokens, h.log_prob) for h in hyps] for hyps in generated] == [
        [(h.tokens, h.log_prob) for h in hyps] for hyps in expected
    ]


def test_generator_with_a_beam_runs_beam_search():
    model = RandomToyModel(0, eos_bias=-1.0)
    src, src_len = random_batch(0)
    options = dict(n_best=2, length_penalty=0.6, max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B)
    generated = SequenceGenerator(beam_size=3, **options)(model, src, src_len)
    expected = beam_search(model, src, src_len, 3, **options)
    assert [[(h.tokens, h.score) for h in hyps] for hyps in generated] == [
        [(h.tokens, h.score) for h in hyps] for hyps in expected
    ]


@pytest.mark.parametrize(
    "options, option",
    [
        (dict(beam_size=0), "beam_size"),
        (dict(beam_size=2.5), "beam_size"),
        (dict(beam_size=2, n_best=3), "n_best"),
        (dict(n_best=0), "n_best"),
        (dict(length_penalty=-0.1), "length_penalty"),
        (dict(coverage_penalty=-1.0), "coverage_penalty"),
        (dict(length_penalty=0.6), "length_penalty"),  # with beam_size=1: not silently a beam search
        (dict(coverage_penalty=0.2), "coverage_penalty"),
        (dict(min_len=-1), "min_len"),
        (dict(max_len_a=-1.0), "max_len_a"),
        (dict(max_len_a=0.0, max_len_b=0), "max_len_b"),
        (dict(max_len_b=-1), "max_len_b"),
    ],
)
def test_generator_rejects_an_out_of_range_option_by_name(options, option):
    with pytest.raises(ConfigError, match=rf"decode\.{option}="):
        SequenceGenerator(**options)
