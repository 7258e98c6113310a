"""Length-bucketed batches: little padding, a fresh random order every epoch, sharded over DDP ranks."""

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
from torch.utils.data import Sampler

from src.errors import ConfigError

BatchBy = Literal["sentences", "tokens"]
BATCH_BY_CHOICES = ("sentences", "tokens")


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of example indices whose lengths are close, so batches carry little padding.

    Training (`shuffle=True`), per epoch: a generator seeded by (seed, epoch) shuffles the indices;
    they are cut into pools of `pool_factor * batch_size` sentences (with `batch_by="tokens"`, pools of
    about `pool_factor * batch_size` tokens); each pool is sorted by length and cut into batches; then
    the batch order is shuffled. Evaluation (`shuffle=False`): all indices sorted by length, no shuffling.

    `batch_by="sentences"`: at most `batch_size` examples per batch. `batch_by="tokens"`: the padded
    size, longest length x number of examples, stays within `batch_size` tokens; an example longer
    than that is a batch of its own. `drop_last` drops batches of fewer than `batch_size` sentences
    (sentences mode only).

    DDP: every rank builds the same batch list. If the number of batches does not divide by
    `num_replicas`, the largest batches are split in halves until it does (on a tiny split where that
    would need more batches than examples, the smallest batches are merged instead), so every rank
    runs the same number of steps and no example is lost or repeated. Rank r takes batches
    r, r + num_replicas, ...

    Args:
        lengths: per example, max(src_len, tgt_len) + 1 (the BOS/EOS position).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        batch_by: BatchBy = "sentences",
        shuffle: bool = True,
        pool_factor: int = 50,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if batch_by not in BATCH_BY_CHOICES:
            raise ValueError(f"batch_by must be one of {BATCH_BY_CHOICES}, got {batch_by!r}")
        if batch_size < 1 or pool_factor < 1 or seed < 0 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"bad sampler arguments: {batch_size=} {pool_factor=} {seed=} {rank=} {num_replicas=}"
            )
        if drop_last and batch_by == "tokens":
            raise ConfigError("drop_last applies to batch_by=sentences only; set data.batch_by=sentences.")
        if 0 < len(lengths) < num_replicas:
            raise ConfigError(
                f"a data split has {len(lengths)} examples but training runs on {num_replicas} devices; "
                "every device needs at least one example. Use more data or fewer devices (trainer.devices)."
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.batch_by = batch_by
        self.shuffle = shuffle
        self.pool_factor = pool_factor
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self._batches_done = 0  # batches of this epoch handed out so far (including skipped ones)
        self._skip = 0  # batches the next iteration skips, to resume mid-epoch
        self._cache: tuple[int, list[list[int]]] | None = None

    @property
    def sampler(self) -> "BucketBatchSampler":
        """Lightning calls `set_epoch` only on `dataloader.sampler` and `dataloader.batch_sampler.sampler`
        (as on torch's BatchSampler); pointing the latter at ourselves gets our epoch set."""
        return self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._batches_done = self._skip = 0
        self.epoch = epoch

    @property
    def skip(self) -> int:
        """Batches the next iteration skips: those of a resumed epoch that were trained on before."""
        return self._skip

    def __len__(self) -> int:
        """Number of batches the next iteration yields on this rank."""
        return max(0, len(self._rank_batches()) - self._skip)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._rank_batches()
        self._batches_done, self._skip = self._skip, 0
        for batch in batches[self._batches_done :]:
            self._batches_done += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_done": self._batches_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration of `state["epoch"]` skips its first `batches_done` batches."""
        self.epoch = state["epoch"]
        self._batches_done = self._skip = state["batches_done"]

    def _rank_batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            batches = self._equalize(self._epoch_batches())
            self._cache = (self.epoch, batches[self.rank :: self.num_replicas])
        return self._cache[1]

    def _epoch_batches(self) -> list[list[int]]:
        if not self.shuffle:
            batches = self._cut(np.argsort(self.lengths, kind="stable"))
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(len(self.lengths))
            pool_size = self._pool_size()
            batches = []
            for start in range(0, len(order), pool_size):
                pool = order[start : start + pool_size]
                batches += self._cut(pool[np.argsort(self.lengths[pool], kind="stable")])
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        return batches

    def _pool_size(self) -> int:
        """Sentences per pool."""
        if self.batch_by == "sentences":
            return self.pool_factor * self.batch_size
        return max(1, int(self.pool_factor * self.batch_size / max(1.0, self.lengths.mean())))

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        """Consecutive batches of `order` (indices sorted by length)."""
        indices = order.tolist()
        if self.batch_by == "sentences":
            return [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in indices:
            length = int(self.lengths[i])
            if current and max(longest, length) * (len(current) + 1) > self.batch_size:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, length)
        if current:
            batches.append(current)
        return batches

    def _equalize(self, batches: list[list[int]]) -> list[list[int]]:
        """Split the largest (or, on tiny splits, merge the smallest) batches until the number of
        batches divides by `num_replicas`."""
        replicas = self.num_replicas
        target = math.ceil(len(batches) / replicas) * replicas
        if target > sum(map(len, batches)):
            target = len(batches) // replicas * replicas
        if target == 0:  # only after drop_last: fewer examples left than replicas
            return []
        while len(batches) < target:
            i = max(range(len(batches)), key=lambda j: len(batches[j]))
            half = len(batches[i]) // 2
            batches[i : i + 1] = [batches[i][:half], batches[i][half:]]
        while len(batches) > target:
            a, b = sorted(range(len(batches)), key=lambda j: len(batches[j]))[:2]
            batches[a] = batches[a] + batches[b]
            del batches[b]
        return batches
