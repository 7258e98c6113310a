"""TranslationDataModule: parallel TSV files -> numericalised splits -> length-bucketed `Batch`es.

`setup` runs once: it reads the files (or splits the training file by ratio), fits the tokenizers and
builds the vocabularies on the training split only, and turns every split into id lists a single
time. The constructor arguments are the keys of `conf/data/*.yaml`. Batches and padding: `src.data.batch`.
"""

import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from src.alignment import read_pharaoh, transpose
from src.checks import is_int, is_number
from src.data.batch import Batch, Example, collate
from src.data.codec import Codec
from src.data.sampler import BATCH_BY_CHOICES, BucketBatchSampler
from src.data.tokenizers import Tokenizer, tokenize_words, tokenizer_from_state_dict
from src.data.tsv import ON_BAD_LINE_CHOICES, read_parallel_tsv
from src.data.vocab import SPECIALS, Vocabulary
from src.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Pair = tuple[str, str]
SPLITS = ("train", "valid", "test")


class TranslationDataset(Dataset):
    """One numericalised split: ids without BOS/EOS, and the raw texts."""

    def __init__(
        self,
        src_ids: list[list[int]],
        tgt_ids: list[list[int]],
        pairs: list[Pair],
        alignments: list[list[tuple[int, int]] | None] | None = None,
    ) -> None:
        self.src_ids, self.tgt_ids, self.pairs, self.alignments = src_ids, tgt_ids, pairs, alignments

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Example:
        if self.alignments is not None:
            return self.src_ids[i], self.tgt_ids[i], self.pairs[i][0], self.pairs[i][1], self.alignments[i]
        return self.src_ids[i], self.tgt_ids[i], self.pairs[i][0], self.pairs[i][1]

    def lengths(self) -> list[int]:
        """Per example max(src_len, tgt_len) + 1: the longer side with its BOS/EOS."""
        return [max(len(s), len(t)) + 1 for s, t in zip(self.src_ids, self.tgt_ids, strict=True)]


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `BucketBatchSampler` whose position within the epoch goes into checkpoints.

    Lightning saves `state_dict()` of every training loader that has one and hands it back to
    `load_state_dict` on resume; the resumed epoch then skips the batches already trained on. The position
    counts the batches this loader has yielded, not those the sampler has handed out: worker processes
    draw batches from the sampler ahead of time (`prefetch_factor` per worker). `len()` stays the length of
    the whole epoch, as Lightning counts a resumed epoch's batches from its restored progress.
    """

    batch_sampler: BucketBatchSampler
    _position: dict[str, int] | None = None  # set when an epoch's iteration starts

    def __iter__(self) -> Iterator[Batch]:
        self._position = {"epoch": self.batch_sampler.epoch, "batches_done": self.batch_sampler.skip}
        for batch in super().__iter__():
            self._position["batches_done"] += 1
            yield batch

    def __len__(self) -> int:
        return len(self.batch_sampler) + self.batch_sampler.skip

    def state_dict(self) -> dict[str, int]:
        return dict(self._position or self.batch_sampler.state_dict())

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.load_state_dict(state)
        self._position = None


def split_by_source(
    pairs: list[Pair], valid_ratio: float, test_ratio: float, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Deterministic (train, valid, test) split over distinct source sentences.

    All pairs that share a source sentence land in the same split, so no source sentence of valid or
    test is seen in training. The ratios are fractions of distinct source sentences (at least one when
    the ratio is above 0); each split keeps the file order.
    """
    sources = list(dict.fromkeys(src for src, _ in pairs))
    random.Random(seed).shuffle(sources)
    n_valid = _share(valid_ratio, len(sources))
    n_test = _share(test_ratio, len(sources))
    valid_src = set(sources[:n_valid])
    test_src = set(sources[n_valid : n_valid + n_test])
    train = [p for p in pairs if p[0] not in valid_src and p[0] not in test_src]
    return train, [p for p in pairs if p[0] in valid_src], [p for p in pairs if p[0] in test_src]


def _share(ratio: float, n: int) -> int:
    return 0 if ratio == 0 else max(1, round(ratio * n))


class TranslationDataModule(L.LightningDataModule):
    """Parallel corpus for training and evaluation.

    Splits: `valid_path`/`test_path` when given; otherwise the missing split is carved out of the
    training file by `valid_ratio`/`test_ratio` (see `split_by_source`). With no validation data
    (`valid_path=None`, `valid_ratio=0`) `val_dataloader` returns an empty list and Lightning skips
    validation; likewise for test.

    `max_len` (tokens per side) drops over-long *training* pairs only; valid/test are kept whole.
    Batches are built by `BucketBatchSampler`; under DDP every split, valid and test included, is
    sharded over the ranks without duplicates, so metrics over whole splits need a gather.
    """

    def __init__(
        self,
        train_path: str,
        valid_path: str | None = None,
        test_path: str | None = None,
        valid_ratio: float = 0.05,
        test_ratio: float = 0.0,
        split_seed: int = 1234,
        src_tokenizer: Tokenizer | None = None,
        tgt_tokenizer: Tokenizer | None = None,
        shared_vocab: bool = False,
        src_min_freq: int = 1,
        src_max_size: int | None = None,
        tgt_min_freq: int = 1,
        tgt_max_size: int | None = None,
        max_len: int | None = 100,
        batch_size: int = 64,
        batch_by: str = "sentences",
        pool_factor: int = 50,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_bad_line: str = "error",
        alignments_path: str | None = None,
        reverse: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _validate(locals())
        self.paths = {"train": train_path, "valid": valid_path, "test": test_path}
        self.valid_ratio = valid_ratio if valid_path is None else 0.0
        self.test_ratio = test_ratio if test_path is None else 0.0
        self.split_seed = split_seed
        self.src_tokenizer = src_tokenizer
        # Same settings as the source, but a separate object: it is fitted on the target side.
        self.tgt_tokenizer = tgt_tokenizer or tokenizer_from_state_dict(src_tokenizer.state_dict())
        self.shared_vocab = shared_vocab
        self.src_min_freq, self.src_max_size = src_min_freq, src_max_size
        self.tgt_min_freq, self.tgt_max_size = tgt_min_freq, tgt_max_size
        self.max_len = max_len
        self.batch_size = batch_size
        self.batch_by = batch_by
        self.pool_factor = pool_factor
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.on_bad_line = on_bad_line
        self.alignments_path = alignments_path
        self.reverse = reverse
        self.seed = seed
        self._codec: Codec | None = None
        self.datasets: dict[str, TranslationDataset] = {}
        self._stats: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------- setup

    def setup(self, stage: str | None = None) -> None:
        """Read, fit and numericalise every split; later calls do nothing."""
        if self._codec is not None:
            return
        pairs, skipped = self._read_splits()
        train_tokens, dropped = self._tokenize_train(pairs["train"])
        pairs["train"] = [pair for pair, drop in zip(pairs["train"], dropped, strict=True) if not drop]
        self._codec = self._build_codec(train_tokens)
        src_vocab, tgt_vocab = self._codec.src_vocab, self._codec.tgt_vocab
        self.datasets["train"] = TranslationDataset(
            [src_vocab.encode(src) for src, _ in train_tokens],
            [tgt_vocab.encode(tgt) for _, tgt in train_tokens],
            pairs["train"],
            self._token_alignments(pairs["train"], train_tokens) if self.alignments_path else None,
        )
        for split in ("valid", "test"):
            if pairs[split]:
                self.datasets[split] = TranslationDataset(
                    [self._codec.encode_src(src) for src, _ in pairs[split]],
                    [self._codec.encode_tgt(tgt) for _, tgt in pairs[split]],
                    pairs[split],
                )
        self._stats = {
            "pairs": {split: len(pairs[split]) for split in SPLITS},
            "dropped_max_len": sum(dropped),
            "skipped_lines": skipped,
        }
        if self.alignments_path:  # pairs whose links could be placed on the tokens
            self._stats["aligned_pairs"] = sum(a is not None for a in self.datasets["train"].alignments)
        log.info("data: %s", self._stats)

    def _read_splits(self) -> tuple[dict[str, list[Pair]], dict[str, dict[str, int]]]:
        pairs: dict[str, list[Pair]] = {}
        skipped: dict[str, dict[str, int]] = {}
        for split, path in self.paths.items():
            if path is not None:
                corpus = read_parallel_tsv(
                    path, self.on_bad_line, option=f"data.{split}_path", reverse=self.reverse
                )
                pairs[split], skipped[split] = corpus.pairs, corpus.skipped
        if self.alignments_path:
            self._read_alignments(pairs["train"], skipped["train"])
        train, valid, test = split_by_source(
            pairs["train"], self.valid_ratio, self.test_ratio, self.split_seed
        )
        if not train:
            raise DataError(
                f"{self.paths['train']}: no training pairs left after taking the validation/test share. "
                "Lower data.valid_ratio / data.test_ratio or give data.valid_path / data.test_path."
            )
        pairs["train"] = train
        pairs.setdefault("valid", valid)
        pairs.setdefault("test", test)
        return pairs, skipped

    def _tokenize_train(self, pairs: list[Pair]) -> tuple[list[tuple[list[str], list[str]]], list[bool]]:
        """Fit the tokenizers on the training text; tokenize it and mark pairs longer than max_len.

        Returns the tokens of the kept pairs and, per input pair, whether it was dropped.
        """
        self.src_tokenizer.fit([src for src, _ in pairs])
        self.tgt_tokenizer.fit([tgt for _, tgt in pairs])
        tokens = [(self.src_tokenizer.tokenize(src), self.tgt_tokenizer.tokenize(tgt)) for src, tgt in pairs]
        limit = self.max_len if self.max_len is not None else float("inf")
        dropped = [max(len(src), len(tgt)) > limit for src, tgt in tokens]
        if all(dropped):
            raise DataError(
                f"{self.paths['train']}: all {len(pairs)} training pairs are longer than "
                f"data.max_len={self.max_len} tokens. Raise data.max_len or set it to null."
            )
        if any(dropped):
            log.warning("data: dropped %d training pairs longer than data.max_len=%d", sum(dropped), limit)
        return [tok for tok, drop in zip(tokens, dropped, strict=True) if not drop], dropped

    def _build_codec(self, train_tokens: list[tuple[list[str], list[str]]]) -> Codec:
        src_lists = [src for src, _ in train_tokens]
        tgt_lists = [tgt for _, tgt in train_tokens]
        if self.shared_vocab:
            vocab = self._vocabulary(src_lists + tgt_lists, "src", "The shared")
            return Codec(self.src_tokenizer, self.tgt_tokenizer, vocab, vocab)
        return Codec(
            self.src_tokenizer,
            self.tgt_tokenizer,
            self._vocabulary(src_lists, "src", "The source"),
            self._vocabulary(tgt_lists, "tgt", "The target"),
        )

    def _vocabulary(self, token_lists: list[list[str]], side: str, name: str) -> Vocabulary:
        """A vocabulary with at least one word besides the special tokens: a model trained on `<unk>` alone
        learns nothing, silently."""
        min_freq, max_size = getattr(self, f"{side}_min_freq"), getattr(self, f"{side}_max_size")
        vocab = Vocabulary.build(token_lists, min_freq, max_size)
        if len(vocab) <= len(SPECIALS):
            most = max(Counter(token for tokens in token_lists for token in tokens).values(), default=0)
            raise ConfigError(
                f"{name} vocabulary has no word besides the special tokens: data.{side}_min_freq={min_freq} is "
                f"above every word's count in {self.paths['train']} (the most frequent occurs {most} times)"
                + (f" or data.{side}_max_size={max_size}" if max_size == 0 else "")
                + f". Lower data.{side}_min_freq (or raise data.{side}_max_size)."
            )
        return vocab

    def _read_alignments(self, train: list[Pair], skipped: dict[str, int]) -> None:
        """`data.alignments_path`: one line of Pharaoh links (`i-j`, 0-based, the word of the file's first
        column first) per training pair, checked against the pairs' words (turned round to `j-i` with
        `data.reverse`); kept by pair for `_token_alignments`."""
        path, option = self.alignments_path, "data.alignments_path"
        if any(skipped.values()):
            raise ConfigError(
                f"{option} needs every line of {self.paths['train']} (its lines are matched by number), but "
                "data.on_bad_line=skip skipped some: fix the training file or leave data.on_bad_line=error."
            )
        links = read_pharaoh(path, option=option)
        # the file's links name the first column's word first; with data.reverse the model's source is the second
        if self.reverse:
            links = [transpose(pair_links) for pair_links in links]
        if len(links) != len(train):
            raise DataError(
                f"{path} has {len(links)} lines but {self.paths['train']} has {len(train)} pairs: give one line "
                f"of links per training pair, in the same order ({option})."
            )
        for number, (pair_links, (src, tgt)) in enumerate(zip(links, train, strict=True), start=1):
            lengths = len(src.split()), len(tgt.split())
            bad = next(
                (link for link in sorted(pair_links) if link[0] >= lengths[0] or link[1] >= lengths[1]), None
            )
            if bad is not None:
                # the link and the word counts as the files have them
                shown, counts = (bad[::-1], lengths[::-1]) if self.reverse else (bad, lengths)
                raise DataError(
                    f"{path}:{number}: link {shown[0]}-{shown[1]} is out of range: line {number} of "
                    f"{self.paths['train']} has {counts[0]} words in its first column and {counts[1]} in its "
                    "second (0-based)."
                )
        self._alignments = dict(zip(train, links, strict=True))

    def _token_alignments(
        self, pairs: list[Pair], tokens: list[tuple[list[str], list[str]]]
    ) -> list[list[tuple[int, int]] | None]:
        """Per training pair, its word links as token links (target token, source token): every token of
        the target word with every token of the source word. None where tokenizing word by word does not
        give the sentence's tokens (the links cannot be placed; counted in `stats`)."""
        result: list[list[tuple[int, int]] | None] = []
        for (src, tgt), (src_tokens, tgt_tokens) in zip(pairs, tokens, strict=True):
            src_words, src_owner = tokenize_words(self.src_tokenizer, src.split())
            tgt_words, tgt_owner = tokenize_words(self.tgt_tokenizer, tgt.split())
            if src_words != src_tokens or tgt_words != tgt_tokens:
                result.append(None)
                continue
            src_of: dict[int, list[int]] = {}
            for k, word in enumerate(src_owner):
                src_of.setdefault(word, []).append(k)
            result.append(
                [
                    (t, s)
                    for t, word in enumerate(tgt_owner)
                    for i, j in self._alignments[(src, tgt)]
                    if j == word
                    for s in src_of.get(i, [])
                ]
            )
        return result

    # ------------------------------------------------------------------------------ accessors

    @property
    def codec(self) -> Codec:
        if self._codec is None:
            raise RuntimeError("TranslationDataModule.setup() must run before the codec is used")
        return self._codec

    @property
    def src_vocab(self) -> Vocabulary:
        return self.codec.src_vocab

    @property
    def tgt_vocab(self) -> Vocabulary:
        return self.codec.tgt_vocab

    @property
    def stats(self) -> dict[str, Any]:
        """{"pairs": {split: n}, "dropped_max_len": n, "skipped_lines": {split: {kind: n}}}."""
        return self._stats

    @property
    def has_valid(self) -> bool:
        return "valid" in self.datasets

    @property
    def has_test(self) -> bool:
        return "test" in self.datasets

    def save(self, directory: str | Path) -> None:
        self.codec.save(directory)

    # ---------------------------------------------------------------------------- dataloaders

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("valid", self.eval_batch_size, shuffle=False) if self.has_valid else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test", self.eval_batch_size, shuffle=False) if self.has_test else []

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> ResumableDataLoader:
        dataset = self.datasets[split]
        trainer = self.trainer
        sampler = BucketBatchSampler(
            dataset.lengths(),
            batch_size,
            batch_by=self.batch_by,
            shuffle=shuffle,
            pool_factor=self.pool_factor,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        return ResumableDataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # its own generator (for the workers' seeds): starting an epoch then leaves the global RNG alone,
            # so a resumed run draws the same dropout masks as an uninterrupted one
            generator=torch.Generator().manual_seed(self.seed),
        )


def _validate(args: dict[str, Any]) -> None:
    """Raise ConfigError naming the option (`data.<name>`) for the first out-of-range argument."""
    ratios = args["valid_ratio"], args["test_ratio"]
    fractions = [is_number(ratio) and 0 <= ratio < 1 for ratio in ratios]
    checks = [
        ("valid_ratio", fractions[0], "a number in [0, 1)"),
        ("test_ratio", fractions[1], "a number in [0, 1)"),
        ("test_ratio", not all(fractions) or sum(ratios) < 1, "below 1 - data.valid_ratio"),
        ("src_tokenizer", isinstance(args["src_tokenizer"], Tokenizer), "a tokenizer config with a _target_"),
        (
            "tgt_tokenizer",
            args["tgt_tokenizer"] is None or isinstance(args["tgt_tokenizer"], Tokenizer),
            "null or a tokenizer config with a _target_",
        ),
        ("src_min_freq", is_int(args["src_min_freq"], 1), "an integer >= 1"),
        ("tgt_min_freq", is_int(args["tgt_min_freq"], 1), "an integer >= 1"),
        (
            "src_max_size",
            args["src_max_size"] is None or is_int(args["src_max_size"], 0),
            "null or an integer >= 0",
        ),
        (
            "tgt_max_size",
            args["tgt_max_size"] is None or is_int(args["tgt_max_size"], 0),
            "null or an integer >= 0",
        ),
        ("max_len", args["max_len"] is None or is_int(args["max_len"], 1), "null or an integer >= 1"),
        ("batch_size", is_int(args["batch_size"], 1), "an integer >= 1"),
        ("batch_by", args["batch_by"] in BATCH_BY_CHOICES, f"one of {list(BATCH_BY_CHOICES)}"),
        ("pool_factor", is_int(args["pool_factor"], 1), "an integer >= 1"),
        (
            "eval_batch_size",
            args["eval_batch_size"] is None or is_int(args["eval_batch_size"], 1),
            "null or an integer >= 1",
        ),
        ("num_workers", is_int(args["num_workers"], 0), "an integer >= 0"),
        ("on_bad_line", args["on_bad_line"] in ON_BAD_LINE_CHOICES, f"one of {list(ON_BAD_LINE_CHOICES)}"),
        ("reverse", isinstance(args["reverse"], bool), "true or false"),
        ("seed", is_int(args["seed"], 0), "an integer >= 0"),
        (
            "alignments_path",
            args["alignments_path"] is None or isinstance(args["alignments_path"], str),
            "null or the path of a file of Pharaoh links",
        ),  # fmt: skip
    ]
    for name, ok, expected in checks:
        if not ok:
            shown = type(args[name]).__name__ if name.endswith("tokenizer") else repr(args[name])
            raise ConfigError(f"data.{name} must be {expected}, got {shown}.")
