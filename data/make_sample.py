"""Build the small sample corpus data/sample/{train,valid,test}.tsv from Tatoeba English-French.

Keeps short, simple pairs as in the PyTorch seq2seq tutorial: the English side starts with one of
the tutorial's prefixes ("i am", "he is", "you re", ...) and each side has at most 10 word tokens
(`WordTokenizer(split_punctuation=True)`, the tokenizer of conf/data/sample.yaml). The sample's
train comes from Tatoeba's train.tsv, valid and test from its valid.tsv and test.tsv, which share no
English sentence with it. Each split is `random.Random(0).sample` of the matching pairs, written in
the original file order. Rerunnable: the same input gives byte-identical files.

Usage, from the repository root:  python data/make_sample.py [--source DIR] [--out DIR]
"""

import argparse
import random
import re
from pathlib import Path

from src.data.tokenizers import WordTokenizer
from src.data.tsv import read_parallel_tsv

REPO = Path(__file__).resolve().parent.parent
PREFIXES = (
    "i am ", "i m ", "he is", "he s ", "she is", "she s ",
    "you are", "you re ", "we are", "we re ", "they are", "they re ",
)  # fmt: skip
MAX_TOKENS = 10
SIZES = {"train": 6000, "valid": 500, "test": 500}
TOKENIZER = WordTokenizer(split_punctuation=True)


def is_simple(english: str, french: str) -> bool:
    """The tutorial's filter: an English prefix (compared without case or punctuation) and short sides."""
    normalized = " ".join(re.sub(r"[\W_]+", " ", english.lower()).split()) + " "
    short = all(len(TOKENIZER.tokenize(side)) <= MAX_TOKENS for side in (english, french))
    return normalized.startswith(PREFIXES) and short


def sample_split(source: Path, size: int, seed: int) -> list[tuple[str, str]]:
    """Up to `size` matching pairs of `source`, chosen at random, in file order."""
    matching = [pair for pair in read_parallel_tsv(source, option="--source").pairs if is_simple(*pair)]
    chosen = random.Random(seed).sample(range(len(matching)), min(size, len(matching)))
    return [matching[i] for i in sorted(chosen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared/data/tatoeba-eng-fra")
    parser.add_argument("--out", type=Path, default=REPO / "data/sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, size in SIZES.items():
        pairs = sample_split(args.source / f"{split}.tsv", size, args.seed)
        text = "".join(f"{english}\t{french}\n" for english, french in pairs)
        (args.out / f"{split}.tsv").write_text(text, encoding="utf-8")
        print(f"{split}: {len(pairs)} pairs -> {args.out / f'{split}.tsv'}")


if __name__ == "__main__":
    main()
