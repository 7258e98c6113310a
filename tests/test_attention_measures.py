import math

import pytest
import torch

from src.callbacks.attention_measures import coverage, entropy, mean_measures, monotonicity

DIAGONAL = torch.eye(5)
ANTI_DIAGONAL = torch.eye(5).flip(dims=[1])


def test_one_hot_rows_have_zero_entropy():
    assert entropy(DIAGONAL) == pytest.approx(0.0)


def test_uniform_rows_have_entropy_log_src_len():
    assert entropy(torch.full((3, 7), 1 / 7)) == pytest.approx(math.log(7))


def test_entropy_is_the_mean_over_rows():
    weights = torch.stack([torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.full((4,), 0.25)])
    assert entropy(weights) == pytest.approx(math.log(4) / 2)


def test_diagonal_attention_is_perfectly_monotonic():
    assert monotonicity(DIAGONAL) == pytest.approx(1.0)


def test_anti_diagonal_attention_is_perfectly_anti_monotonic():
    assert monotonicity(ANTI_DIAGONAL) == pytest.approx(-1.0)


def test_monotonicity_is_a_rank_correlation_not_a_linear_one():
    weights = torch.zeros(4, 10)
    weights[[0, 1, 2, 3], [0, 1, 4, 9]] = 1.0  # increasing, but not along a line
    assert monotonicity(weights) == pytest.approx(1.0)


def test_tied_argmax_positions_share_their_average_rank():
    # argmax positions 0, 0, 2, 5 rank as 0.5, 0.5, 2, 3 (Spearman with ties), against steps 0, 1, 2, 3
    weights = torch.zeros(4, 6)
    weights[[0, 1, 2, 3], [0, 0, 2, 5]] = 1.0
    ranks, steps = torch.tensor([0.5, 0.5, 2.0, 3.0]), torch.arange(4.0)
    expected = torch.corrcoef(torch.stack([ranks, steps]))[0, 1].item()
    assert monotonicity(weights) == pytest.approx(expected)
    assert 0.9 < expected < 1.0


def test_constant_argmax_has_zero_monotonicity():
    weights = torch.zeros(4, 3)
    weights[:, 1] = 1.0
    assert monotonicity(weights) == 0.0
    assert monotonicity(torch.tensor([[0.2, 0.8]])) == 0.0


def test_coverage_counts_source_tokens_with_half_the_attention():
    # column sums 1.0, 0.5, 0.3, 0.2: two of four source tokens reach 0.5
    weights = torch.tensor([[0.6, 0.2, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1]])
    assert coverage(weights) == pytest.approx(0.5)
    assert coverage(DIAGONAL) == pytest.approx(1.0)


def test_mean_measures_average_over_sentences():
    means = mean_measures([DIAGONAL, ANTI_DIAGONAL])
    assert means == pytest.approx({"entropy": 0.0, "monotonicity": 0.0, "coverage": 1.0})
    assert mean_measures([]) == {}
