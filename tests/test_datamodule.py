"""TranslationDataModule, collate and Codec: batches, splits, fitting on train only, configs, checkpoints."""

import inspect
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.data import _set_sampler_epoch
from omegaconf import OmegaConf

from src.data.batch import collate_sources
from src.data.codec import Codec
from src.data.datamodule import TranslationDataModule
from src.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from src.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary
from src.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["the", "a", "cat", "dog", "sees", "likes", "big", "small", "red", "blue", "runs", "sleeps"]


def make_pairs(n: int, seed: int = 0, min_len: int = 2, max_len: int = 8) -> list[tuple[str, str]]:
    """Source: random words; target: the same words reversed and upper-cased."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(min_len, max_len))
        pairs.append((" ".join(words), " ".join(w.upper() for w in reversed(words))))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> str:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return str(path)


def make_dm(tmp_path: Path, pairs=None, **kwargs) -> TranslationDataModule:
    if "train_path" not in kwargs:
        kwargs["train_path"] = write_tsv(tmp_path / "train.tsv", pairs or make_pairs(200))
    kwargs.setdefault("src_tokenizer", WordTokenizer())
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("valid_ratio", 0.1)
    dm = TranslationDataModule(**kwargs)
    dm.setup("fit")
    return dm


def first_batch(dm: TranslationDataModule):
    return next(iter(dm.train_dataloader()))


def sources(dm: TranslationDataModule, split: str) -> set[str]:
    return {src for src, _ in dm.datasets[split].pairs}


# ----------------------------------------------------------------------------- batches


def test_batch_tensors_have_matching_shapes(tmp_path):
    batch = first_batch(make_dm(tmp_path))
    size = len(batch)
    assert batch.src.shape == (size, int(batch.src_len.max()))
    assert batch.src_len.shape == (size,)
    assert batch.tgt_in.shape == batch.tgt_out.shape
    assert batch.tgt_in.shape[0] == size == len(batch.tgt_text)
    assert batch.src.dtype == batch.tgt_in.dtype == torch.long


def test_tgt_in_is_bos_then_target_and_tgt_out_is_target_then_eos(tmp_path):
    dm = make_dm(tmp_path)
    batch = first_batch(dm)
    for row, reference in enumerate(batch.tgt_text):
        target = dm.codec.encode_tgt(reference)
        n = len(target)
        assert batch.tgt_in[row, : n + 1].tolist() == [BOS_ID, *target]
        assert batch.tgt_out[row, : n + 1].tolist() == [*target, EOS_ID]


def test_padding_positions_hold_pad_id_and_only_them(tmp_path):
    batch = first_batch(make_dm(tmp_path))
    positions = torch.arange(batch.src.shape[1])
    is_pad = positions[None, :] >= batch.src_len[:, None]
    assert torch.equal(batch.src == PAD_ID, is_pad)
    tgt_len = (batch.tgt_out == EOS_ID).nonzero()[:, 1] + 1
    assert torch.equal(
        batch.tgt_out == PAD_ID, torch.arange(batch.tgt_out.shape[1])[None, :] >= tgt_len[:, None]
    )


def test_batch_texts_are_the_raw_lines(tmp_path):
    dm = make_dm(tmp_path)
    batch = first_batch(dm)
    assert set(zip(batch.src_text, batch.tgt_text, strict=True)) <= set(dm.datasets["train"].pairs)


def test_collate_sources_pads_and_reports_lengths():
    src, src_len = collate_sources([[5, 6, 7], [8]])
    assert src.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert src_len.tolist() == [3, 1]


def test_every_training_example_is_served_once_per_epoch(tmp_path):
    dm = make_dm(tmp_path)
    served = [
        pair for batch in dm.train_dataloader() for pair in zip(batch.src_text, batch.tgt_text, strict=True)
    ]
    assert sorted(served) == sorted(dm.datasets["train"].pairs)


def test_worker_processes_yield_the_same_batches(tmp_path):
    in_process = [b.src for b in make_dm(tmp_path).val_dataloader()]
    with_workers = [b.src for b in make_dm(tmp_path, num_workers=1).val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(in_process, with_workers, strict=True))


def test_train_loader_shards_over_the_trainer_ranks(tmp_path):
    dm = make_dm(tmp_path)
    served, steps = [], set()
    for rank in range(2):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        loader = dm.train_dataloader()
        steps.add(len(loader))
        served += [src for batch in loader for src in batch.src_text]
    assert len(steps) == 1
    assert sorted(served) == sorted(src for src, _ in dm.datasets["train"].pairs)


def test_lightning_sets_the_epoch_of_the_train_sampler(tmp_path):
    loader = make_dm(tmp_path).train_dataloader()
    _set_sampler_epoch(loader, 3)  # what Lightning's fit loop calls at the start of every epoch
    assert loader.batch_sampler.epoch == 3


# ---------------------------------------------------------------------------- setup


def test_pairs_longer_than_max_len_are_dropped_from_train_and_counted(tmp_path):
    pairs = make_pairs(100, min_len=2, max_len=4) + make_pairs(7, seed=1, min_len=6, max_len=6)
    dm = make_dm(tmp_path, pairs, max_len=5, valid_ratio=0.0)
    assert dm.stats["dropped_max_len"] == 7
    assert dm.stats["pairs"]["train"] == 100
    assert max(dm.datasets["train"].lengths()) <= 5 + 1


def test_max_len_dropping_every_pair_raises_naming_the_option(tmp_path):
    with pytest.raises(DataError, match=r"longer than data\.max_len=1 tokens"):
        make_dm(tmp_path, max_len=1)


def test_ratio_split_is_deterministic_and_disjoint(tmp_path):
    a = make_dm(tmp_path, valid_ratio=0.1, test_ratio=0.1)
    b = make_dm(tmp_path, valid_ratio=0.1, test_ratio=0.1)
    for split in ("train", "valid", "test"):
        assert a.datasets[split].pairs == b.datasets[split].pairs
    assert not sources(a, "train") & sources(a, "valid")
    assert not sources(a, "train") & sources(a, "test")
    assert not sources(a, "valid") & sources(a, "test")
    assert sum(a.stats["pairs"].values()) == 200


def test_ratio_split_depends_on_split_seed(tmp_path):
    assert sources(make_dm(tmp_path, split_seed=1), "valid") != sources(
        make_dm(tmp_path, split_seed=2), "valid"
    )


def test_ratio_split_keeps_all_translations_of_a_source_together(tmp_path):
    pairs = [(src, f"{tgt} {k}") for src, tgt in make_pairs(50) for k in range(3)]
    dm = make_dm(tmp_path, pairs, valid_ratio=0.2)
    assert not sources(dm, "train") & sources(dm, "valid")
    assert len(dm.datasets["valid"]) % 3 == 0


def test_setup_twice_tokenizes_only_once(tmp_path):
    calls = []

    class CountingTokenizer(WordTokenizer):
        def tokenize(self, text: str) -> list[str]:
            calls.append(text)
            return super().tokenize(text)

    dm = make_dm(tmp_path, src_tokenizer=CountingTokenizer())
    before, datasets = len(calls), dict(dm.datasets)
    dm.setup("fit")
    dm.setup("test")
    assert len(calls) == before
    assert all(dm.datasets[split] is datasets[split] for split in datasets)


def test_reverse_translates_the_second_column_into_the_first_in_every_split(tmp_path):
    pairs = [(f"the {w}", f"LE {w.upper()}") for w in WORDS]
    valid = write_tsv(tmp_path / "valid.tsv", [("the cat", "LE CAT")])
    dm = make_dm(tmp_path, pairs=pairs, valid_path=valid, reverse=True)
    assert "LE" in dm.src_vocab.to_list() and "the" not in dm.src_vocab.to_list()
    assert "the" in dm.tgt_vocab.to_list() and "LE" not in dm.tgt_vocab.to_list()
    assert dm.datasets["valid"].pairs == [("LE CAT", "the cat")]
    assert all(src.startswith("LE ") for src, _ in dm.datasets["train"].pairs)


def test_vocabularies_are_built_from_the_training_split_only(tmp_path):
    valid = write_tsv(tmp_path / "valid.tsv", [("zebra cat", "ZEBRA CAT")])
    dm = make_dm(tmp_path, valid_path=valid)
    assert dm.codec.encode_src("zebra cat") == [UNK_ID, dm.src_vocab.encode(["cat"])[0]]
    assert "ZEBRA" not in dm.tgt_vocab.to_list()


def test_min_freq_and_max_size_reach_the_vocabularies(tmp_path):
    dm = make_dm(tmp_path, src_max_size=3, tgt_min_freq=70)
    assert len(dm.src_vocab) == 4 + 3
    # (a min_freq above every count is an error: test_a_vocabulary_of_special_tokens_only_...)
    counts = Counter(token for _, tgt in dm.datasets["train"].pairs for token in tgt.split())
    assert len(dm.tgt_vocab) == 4 + sum(n >= 70 for n in counts.values()) < 4 + len(counts)


def test_shared_vocab_is_one_vocabulary_over_both_sides(tmp_path):
    dm = make_dm(tmp_path, shared_vocab=True)
    assert dm.src_vocab is dm.tgt_vocab
    assert {"cat", "CAT"} <= set(dm.src_vocab.to_list())


def test_missing_tgt_tokenizer_is_a_separate_copy_of_the_source_settings(tmp_path):
    src_tokenizer = WordTokenizer(lowercase=True)
    dm = make_dm(tmp_path, src_tokenizer=src_tokenizer)
    assert dm.tgt_tokenizer is not src_tokenizer
    assert dm.tgt_tokenizer.state_dict() == src_tokenizer.state_dict()


def test_without_validation_data_val_dataloader_is_empty(tmp_path):
    dm = make_dm(tmp_path, valid_ratio=0.0)
    assert not dm.has_valid
    assert dm.val_dataloader() == []


def test_skipped_bad_lines_appear_in_stats(tmp_path):
    path = tmp_path / "train.tsv"
    write_tsv(path, make_pairs(50))
    with path.open("a", encoding="utf-8") as f:
        f.write("no tab here\n")
    dm = make_dm(tmp_path, train_path=str(path), on_bad_line="skip")
    assert dm.stats["skipped_lines"]["train"] == {"no_tab": 1}


def test_missing_valid_file_error_names_its_option(tmp_path):
    with pytest.raises(DataError, match=r"missing\.tsv: file not found\. Set data\.valid_path"):
        make_dm(tmp_path, valid_path=str(tmp_path / "missing.tsv"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("valid_ratio", 1.0),
        ("test_ratio", -0.1),
        ("batch_by", "words"),
        ("on_bad_line", "ignore"),
        ("batch_size", 0),
        ("max_len", 0),
        ("src_min_freq", 0),
        ("src_tokenizer", {"lowercase": True}),
        ("reverse", "yes"),
    ],
)
def test_invalid_option_raises_config_error_naming_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=rf"data\.{name} must be"):
        TranslationDataModule(**{"train_path": "x.tsv", "src_tokenizer": WordTokenizer(), name: value})


# --------------------------------------------------------------------------- configs


def test_shipped_sample_loads_with_its_config():
    cfg = OmegaConf.create({"paths": {"data_dir": str(ROOT / "data")}, "seed": 0})
    cfg.tokenizer = OmegaConf.load(ROOT / "conf/tokenizer/word.yaml")  # the default of the tokenizer group
    cfg.data = OmegaConf.load(ROOT / "conf/data/sample.yaml")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert dm.stats["pairs"] == {"train": 6000, "valid": 155, "test": 147}
    batch = first_batch(dm)
    assert len(batch) == 64
    assert not (batch.src == UNK_ID).any()  # min_freq 1: every training word is in the vocabulary


@pytest.mark.parametrize("name", ["sample", "tatoeba", "multi30k"])
def test_data_config_keys_are_the_constructor_arguments(name):
    cfg = OmegaConf.load(ROOT / f"conf/data/{name}.yaml")
    # tatoeba and multi30k start from sample (their defaults list) and override some keys
    keys = set(OmegaConf.load(ROOT / "conf/data/sample.yaml")) | (set(cfg) - {"defaults"})
    parameters = set(inspect.signature(TranslationDataModule).parameters)
    assert keys - {"_target_"} == parameters


# ----------------------------------------------------------------------------- codec

CODEC_CORPUS = make_pairs(60, seed=5)


def make_codec(kind: str, shared: bool = False) -> Codec:
    make = {
        "word": lambda: WordTokenizer(lowercase=True, split_punctuation=True),
        "char": CharTokenizer,
        "sentencepiece": lambda: SentencePieceTokenizer(vocab_size=30),
    }[kind]
    src_tokenizer, tgt_tokenizer = make(), make()
    src_tokenizer.fit([s for s, _ in CODEC_CORPUS])
    tgt_tokenizer.fit([t for _, t in CODEC_CORPUS])
    src_vocab = Vocabulary.build(src_tokenizer.tokenize(s) for s, _ in CODEC_CORPUS)
    tgt_vocab = Vocabulary.build(tgt_tokenizer.tokenize(t) for _, t in CODEC_CORPUS)
    return Codec(src_tokenizer, tgt_tokenizer, src_vocab, src_vocab if shared else tgt_vocab)


@pytest.mark.parametrize("kind", ["word", "char", "sentencepiece"])
def test_codec_state_dict_survives_a_weights_only_checkpoint(tmp_path, kind):
    codec = make_codec(kind)
    torch.save({"codec": codec.state_dict()}, tmp_path / "ckpt.pt")
    rebuilt = Codec.from_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["codec"])
    src, tgt = CODEC_CORPUS[0]
    ids = codec.encode_tgt(tgt)
    assert rebuilt.encode_src(src) == codec.encode_src(src)
    assert rebuilt.decode_tgt(ids) == codec.decode_tgt(ids)
    assert rebuilt.state_dict() == codec.state_dict()


def test_codec_from_state_dict_keeps_a_shared_vocabulary_shared():
    rebuilt = Codec.from_state_dict(make_codec("word", shared=True).state_dict())
    assert rebuilt.shared_vocab


def test_codec_decode_tgt_detokenizes_up_to_eos():
    codec = make_codec("word")
    ids = codec.encode_tgt("CAT SEES DOG")
    assert codec.decode_tgt([BOS_ID, *ids, EOS_ID, *ids]) == "cat sees dog"


def test_codec_src_tokens_show_unknown_words_as_unk():
    assert make_codec("word").src_tokens("the zebra") == ["the", "<unk>"]


def test_codec_save_writes_one_vocabulary_file_per_side(tmp_path):
    make_codec("word").save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src_vocab.txt", "tgt_vocab.txt"]


def test_codec_save_writes_a_single_file_for_a_shared_vocabulary(tmp_path):
    make_codec("word", shared=True).save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.txt"]


def test_codec_save_writes_sentencepiece_models(tmp_path):
    codec = make_codec("sentencepiece")
    codec.save(tmp_path)
    assert (tmp_path / "src_spm.model").read_bytes() == codec.src_tokenizer.model
    assert (tmp_path / "tgt_spm.model").read_bytes() == codec.tgt_tokenizer.model


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"src_min_freq": 10_000}, "data.src_min_freq=10000"),
        ({"tgt_min_freq": 10_000}, "data.tgt_min_freq=10000"),
        ({"tgt_max_size": 0}, "data.tgt_max_size=0"),
        ({"shared_vocab": True, "src_min_freq": 10_000}, "The shared vocabulary"),
    ],
)
def test_a_vocabulary_of_special_tokens_only_stops_with_the_option_named(tmp_path, options, named):
    with pytest.raises(ConfigError, match="no word besides the special tokens") as err:
        make_dm(tmp_path, **options)
    assert named in str(err.value) and "train.tsv" in str(err.value)
