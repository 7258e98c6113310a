"""Toy sequence tasks that show the bottleneck of a model without attention, in minutes on a laptop.

`generate_pairs` draws, deterministically from a seed, source/target pairs of one task over `num_symbols`
symbols (the letters `a`, `b`, ... ; `s26`, `s27`, ... past 26), with sequence lengths drawn uniformly
from a range:

| task | source (n symbols) | target |
| --- | --- | --- |
| `copy` | `c a d b` | `c a d b` |
| `reverse` | `c a d b` | `b d a c` (Sutskever et al. 2014 reversed the source for this reason) |
| `sort` | `c a d b` | `a b c d` |
| `lookup` | n distinct key-value pairs, `=`, the n keys in another order: `a c b d = b a` ... | the values of the queried keys in the order asked: the model must look far back (associative recall) |

`SyntheticDataModule` writes the task as TSV files (`train.tsv`, `valid.tsv`, `test.tsv`) into a folder
of the run and reads them through `TranslationDataModule`, exactly as a real corpus is read. Validation
pairs are drawn from the training lengths, test pairs from `test_lengths`, typically longer (length
extrapolation); no validation or test source occurs in the training data. The config (task, sizes,
lengths, seed: all in the run's `.hydra/config.yaml`) regenerates the same files byte for byte.
"""

import os
import random
import string
from pathlib import Path
from typing import Any

from src.checks import is_int
from src.data.datamodule import TranslationDataModule
from src.data.tokenizers import WordTokenizer
from src.errors import ConfigError

TASKS = ("copy", "reverse", "sort", "lookup")
SPLIT_FILES = {"train": "train.tsv", "valid": "valid.tsv", "test": "test.tsv"}


def symbols(num_symbols: int) -> list[str]:
    """The task's vocabulary: `a`..`z`, then `s26`, `s27`, ..."""
    return [string.ascii_lowercase[i] if i < 26 else f"s{i}" for i in range(num_symbols)]


def make_pair(task: str, length: int, alphabet: list[str], rng: random.Random) -> tuple[str, str]:
    """One (source, target) pair of `length` symbols (for `lookup`: `length` key-value pairs)."""
    if task == "lookup":
        keys = rng.sample(alphabet, length)
        values = [rng.choice(alphabet) for _ in keys]
        queries = rng.sample(range(length), length)
        source = [token for key, value in zip(keys, values, strict=True) for token in (key, value)]
        source += ["=", *(keys[i] for i in queries)]
        return " ".join(source), " ".join(values[i] for i in queries)
    sequence = [rng.choice(alphabet) for _ in range(length)]
    target = {"copy": sequence, "reverse": sequence[::-1], "sort": sorted(sequence, key=alphabet.index)}[task]
    return " ".join(sequence), " ".join(target)


def generate_pairs(
    task: str, size: int, lengths: tuple[int, int], num_symbols: int, rng: random.Random, exclude: set[str]
) -> list[tuple[str, str]]:
    """`size` pairs with distinct sources not in `exclude`, lengths uniform in [lengths[0], lengths[1]]."""
    alphabet = symbols(num_symbols)
    pairs: list[tuple[str, str]] = []
    seen = set(exclude)
    attempts = 0
    while len(pairs) < size:
        attempts += 1
        if attempts > 50 * size + 1000:
            raise ConfigError(
                f"data: cannot draw {size} distinct {task} pairs of lengths {lengths[0]}-{lengths[1]} over "
                f"{num_symbols} symbols (there are too few such sequences); lower the split's size or raise "
                "data.num_symbols or the lengths."
            )
        pair = make_pair(task, rng.randint(*lengths), alphabet, rng)
        if pair[0] not in seen:
            seen.add(pair[0])
            pairs.append(pair)
    return pairs


def generate_task(
    task: str,
    num_symbols: int,
    train_lengths: tuple[int, int],
    test_lengths: tuple[int, int],
    train_size: int,
    valid_size: int,
    test_size: int,
    seed: int,
) -> dict[str, list[tuple[str, str]]]:
    """The three splits; test and validation first, so that training excludes their sources."""
    rng = random.Random(seed)
    test = generate_pairs(task, test_size, test_lengths, num_symbols, rng, set())
    valid = generate_pairs(task, valid_size, train_lengths, num_symbols, rng, {s for s, _ in test})
    held_out = {s for s, _ in test + valid}
    train = generate_pairs(task, train_size, train_lengths, num_symbols, rng, held_out)
    return {"train": train, "valid": valid, "test": test}


def _check(task: str, num_symbols: Any, train_lengths: Any, test_lengths: Any, sizes: dict[str, Any]) -> None:
    if task not in TASKS:
        raise ConfigError(f"data.task={task!r} is invalid: use one of {', '.join(TASKS)}.")
    if not is_int(num_symbols, 2):
        raise ConfigError(f"data.num_symbols must be an integer >= 2, got {num_symbols!r}.")
    for name, value in (("train_lengths", train_lengths), ("test_lengths", test_lengths)):
        if len(value) != 2 or not all(is_int(v) for v in value) or not 1 <= value[0] <= value[1]:
            raise ConfigError(
                f"data.{name} must be [shortest, longest] with 1 <= shortest <= longest, got {value}."
            )
        if task == "lookup" and value[1] > num_symbols:
            raise ConfigError(
                f"data.{name}={list(value)}: a lookup of {value[1]} distinct keys needs data.num_symbols >= "
                f"{value[1]} (it is {num_symbols})."
            )
    for name, value in sizes.items():
        if not is_int(value, 1 if name == "train_size" else 0):
            raise ConfigError(f"data.{name} must be a non-negative integer (train_size >= 1), got {value!r}.")


class SyntheticDataModule(TranslationDataModule):
    """A toy task written to `directory` (as TSV) and read like any corpus; every other argument is
    `TranslationDataModule`'s. Symbols are whitespace tokens (`WordTokenizer`, no lowercasing)."""

    def __init__(
        self,
        directory: str,
        task: str = "reverse",
        num_symbols: int = 20,
        train_lengths: tuple[int, int] = (1, 20),
        test_lengths: tuple[int, int] = (1, 40),
        train_size: int = 20000,
        valid_size: int = 500,
        test_size: int = 2000,
        train_path: str | None = None,
        valid_path: str | None = None,
        test_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        given = {"train_path": train_path, "valid_path": valid_path, "test_path": test_path}
        if any(given.values()):
            option = next(name for name, value in given.items() if value)
            raise ConfigError(
                f"data.{option} is set, but data=synthetic writes its own files (into data.directory); "
                f"leave data.{option} null, or use another data option to read your own corpus."
            )
        train_lengths, test_lengths = tuple(train_lengths), tuple(test_lengths)
        _check(
            task,
            num_symbols,
            train_lengths,
            test_lengths,
            {"train_size": train_size, "valid_size": valid_size, "test_size": test_size},
        )
        self.directory = Path(directory)
        self.task_args = {
            "task": task,
            "num_symbols": num_symbols,
            "train_lengths": train_lengths,
            "test_lengths": test_lengths,
            "train_size": train_size,
            "valid_size": valid_size,
            "test_size": test_size,
            "seed": kwargs.get("seed", 0),
        }
        kwargs.setdefault("src_tokenizer", WordTokenizer())
        kwargs.setdefault("max_len", None)  # the lengths are the task's: none is dropped
        paths = {f"{split}_path": str(self.directory / name) for split, name in SPLIT_FILES.items()}
        if not valid_size:
            paths["valid_path"] = None
        if not test_size:
            paths["test_path"] = None
        super().__init__(**paths, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        """Write the task's files (the same bytes for the same arguments), then read them."""
        self.write()
        super().setup(stage)

    def write(self) -> dict[str, Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        splits = generate_task(**self.task_args)
        paths = {}
        for split, pairs in splits.items():
            if pairs or split == "train":
                paths[split] = self.directory / SPLIT_FILES[split]
                text = "".join(f"{source}\t{target}\n" for source, target in pairs)
                # atomic: DDP processes write the same bytes at once, and a reader never sees half a file
                partial = paths[split].with_name(f"{paths[split].name}.{os.getpid()}.tmp")
                partial.write_text(text, encoding="utf-8")
                partial.replace(paths[split])
        return paths
