"""BucketBatchSampler: coverage, homogeneity, seeding, token budgets, DDP sharding, mid-epoch resume."""

import random

import pytest

from src.data.sampler import BucketBatchSampler
from src.errors import ConfigError

_rng = random.Random(0)
LENGTHS = [_rng.randint(2, 60) for _ in range(1000)]
MODES = {"sentences": 16, "tokens": 400}  # batch_by -> batch_size


def sampler(batch_by="sentences", lengths=LENGTHS, **kwargs) -> BucketBatchSampler:
    kwargs.setdefault("pool_factor", 4)
    return BucketBatchSampler(lengths, MODES[batch_by], batch_by=batch_by, **kwargs)


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def padding_fraction(batches: list[list[int]], lengths: list[int]) -> float:
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


@pytest.mark.parametrize("batch_by", MODES)
def test_every_index_appears_exactly_once_per_epoch(batch_by):
    s = sampler(batch_by)
    for epoch in range(2):
        s.set_epoch(epoch)
        assert sorted(flat(list(s))) == list(range(len(LENGTHS)))


@pytest.mark.parametrize("batch_by", MODES)
def test_len_equals_number_of_batches_yielded(batch_by):
    s = sampler(batch_by)
    s.set_epoch(3)
    assert len(s) == len(list(s))


def test_batches_are_length_homogeneous():
    bucketed = list(sampler(pool_factor=50))
    order = list(range(len(LENGTHS)))
    random.Random(0).shuffle(order)
    random_batches = [order[i : i + 16] for i in range(0, len(order), 16)]
    assert padding_fraction(bucketed, LENGTHS) < 0.2 * padding_fraction(random_batches, LENGTHS)


def test_sentence_batches_hold_batch_size_examples_except_one():
    sizes = sorted(len(b) for b in sampler())
    assert sizes[1:] == [16] * (len(sizes) - 1) and 0 < sizes[0] <= 16


def test_token_batches_respect_the_budget():
    for batch in sampler("tokens"):
        assert max(LENGTHS[i] for i in batch) * len(batch) <= MODES["tokens"]


def test_over_long_example_is_a_batch_of_its_own():
    batches = list(BucketBatchSampler([5, 500, 5, 5], batch_size=100, batch_by="tokens", shuffle=False))
    assert [1] in batches
    assert sorted(flat(batches)) == [0, 1, 2, 3]


def test_different_epochs_give_different_orders():
    s = sampler()
    s.set_epoch(0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first


def test_same_seed_and_epoch_give_the_same_order():
    a, b = sampler(seed=7), sampler(seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)


def test_different_seeds_give_different_orders():
    assert list(sampler(seed=1)) != list(sampler(seed=2))


def test_without_shuffle_batches_are_sorted_by_length_and_fixed():
    s = sampler(shuffle=False)
    first = list(s)
    s.set_epoch(5)
    assert list(s) == first
    assert [LENGTHS[i] for i in flat(first)] == sorted(LENGTHS)


def test_drop_last_drops_the_incomplete_batch():
    batches = list(sampler(drop_last=True))
    assert all(len(b) == 16 for b in batches)
    assert len(flat(batches)) == len(LENGTHS) // 16 * 16


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("batch_by", MODES)
@pytest.mark.parametrize("n_examples", [1000, 101])
def test_ddp_shards_cover_every_example_once_with_equal_steps(replicas, batch_by, n_examples):
    lengths = LENGTHS[:n_examples]
    shards = []
    for rank in range(replicas):
        s = sampler(batch_by, lengths, seed=3, num_replicas=replicas, rank=rank)
        s.set_epoch(1)
        shards.append(list(s))
        assert len(s) == len(shards[-1])
    assert len({len(shard) for shard in shards}) == 1
    assert sorted(i for shard in shards for i in flat(shard)) == list(range(n_examples))


def test_ddp_on_a_split_with_few_examples_still_covers_each_once():
    shards = [list(BucketBatchSampler([3] * 5, 1, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
    assert [len(shard) for shard in shards] == [1, 1, 1]
    assert sorted(i for shard in shards for i in flat(shard)) == [0, 1, 2, 3, 4]


def test_fewer_examples_than_replicas_raises_config_error():
    with pytest.raises(ConfigError, match="2 examples but training runs on 4 devices"):
        BucketBatchSampler([3, 4], batch_size=8, num_replicas=4, rank=0)


def test_resume_skips_the_batches_already_done():
    s = sampler()
    s.set_epoch(4)
    iterator = iter(s)
    for _ in range(5):
        next(iterator)
    state = s.state_dict()
    assert state == {"epoch": 4, "batches_done": 5}
    resumed = sampler()
    resumed.load_state_dict(state)
    resumed.set_epoch(4)  # Lightning calls this again at the start of the resumed epoch
    expected = list(iterator)
    assert len(resumed) == len(expected)
    assert list(resumed) == expected


def test_resume_skip_applies_to_one_epoch_only():
    resumed = sampler()
    resumed.load_state_dict({"epoch": 0, "batches_done": 5})
    list(resumed)
    resumed.set_epoch(1)
    fresh = sampler()
    fresh.set_epoch(1)
    assert list(resumed) == list(fresh)
