"""Greedy search against toy models: locally best tokens, length limits, attention, batching."""

import math

import pytest
import torch

from src.decoding import greedy_search
from tests.toy_models import GREEDY_TRAP, A, RandomToyModel, TableToyModel, random_batch, rescore

MAX_LEN_A, MAX_LEN_B = 1.5, 2


def test_greedy_takes_the_locally_best_token_at_each_step():
    [[hyp]] = greedy_search(TableToyModel(GREEDY_TRAP), torch.tensor([[4, 5]]), torch.tensor([2]), 0.0, 5)
    assert hyp.tokens == [A]
    assert hyp.log_prob == pytest.approx(math.log(0.6) + math.log(0.4))
    assert hyp.score == hyp.log_prob


def test_greedy_stops_once_every_sentence_has_ended():
    model = TableToyModel(GREEDY_TRAP)
    greedy_search(model, torch.tensor([[4, 5], [6, 0]]), torch.tensor([2, 1]), 0.0, 50)
    assert model.calls == 2  # A, then <eos>: not 51 steps


@pytest.mark.parametrize("seed", range(3))
def test_greedy_log_prob_and_attention_match_teacher_forcing(seed):
    model = RandomToyModel(seed, eos_bias=-1.0)
    src, src_len = random_batch(seed)
    for i, [hyp] in enumerate(greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B)):
        log_prob, attention = rescore(model, src[i : i + 1, : src_len[i]], src_len[i : i + 1], hyp.tokens)
        assert hyp.log_prob == pytest.approx(log_prob, abs=1e-4)
        torch.testing.assert_close(hyp.attention, attention)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_batched_equals_per_sentence(seed):
    model = RandomToyModel(seed, eos_bias=-1.0)
    src, src_len = random_batch(seed)
    batched = greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B)
    for i, [hyp] in enumerate(batched):
        [[alone]] = greedy_search(
            model, src[i : i + 1, : src_len[i]], src_len[i : i + 1], MAX_LEN_A, MAX_LEN_B
        )
        assert hyp.tokens == alone.tokens
        assert hyp.log_prob == pytest.approx(alone.log_prob, abs=1e-5)
        torch.testing.assert_close(hyp.attention, alone.attention)


def test_greedy_respects_min_len():
    model = RandomToyModel(0, eos_bias=8.0)  # <eos> is by far the likeliest token
    src, src_len = random_batch(0)
    assert all(len(hyp.tokens) < 3 for [hyp] in greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B))
    for [hyp] in greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B, min_len=3):
        assert len(hyp.tokens) >= 3


def test_greedy_max_length_is_floor_of_a_times_src_len_plus_b():
    model = RandomToyModel(0, eos_bias=-50.0)  # only the length limit ends a sentence
    src, src_len = random_batch(0)
    hyps = greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B)
    assert [len(hyp.tokens) for [hyp] in hyps] == [math.floor(1.5 * n + 2) for n in src_len.tolist()]


def test_greedy_attention_has_a_row_per_output_and_a_column_per_real_source_token():
    model = RandomToyModel(0, heads=2, eos_bias=-1.0)
    src, src_len = random_batch(0)
    for [hyp], n in zip(
        greedy_search(model, src, src_len, MAX_LEN_A, MAX_LEN_B), src_len.tolist(), strict=True
    ):
        assert hyp.attention.shape == (2, len(hyp.tokens) + 1, n)
        assert hyp.attention.dtype == torch.float32
        torch.testing.assert_close(hyp.attention.sum(dim=2), torch.ones(2, len(hyp.tokens) + 1))
