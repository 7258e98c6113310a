"""Guided alignment: word links of the training pairs become token-level targets of the attention."""

import pytest
import torch

from src.data.batch import collate
from src.data.datamodule import TranslationDataModule
from src.data.tokenizers import WordTokenizer
from src.errors import ConfigError, DataError
from src.losses import alignment_loss
from src.schema import validate_train_config
from tests.conftest import compose_config, write_tsv
from tests.tiny_runs import tiny_overrides, train_here, write_tiny_task


def test_alignment_loss_is_zero_when_attention_equals_the_target_and_positive_otherwise():
    target = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])  # a last row without links
    assert float(alignment_loss(target.clone(), target)) == pytest.approx(0.0, abs=1e-6)
    other = torch.tensor([[[0.2, 0.8, 0.0], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]]])
    assert float(alignment_loss(other, target)) > 0.1
    # the row without links does not count, whatever the attention there
    changed = other.clone()
    changed[0, 2] = torch.tensor([0.0, 0.0, 1.0])
    assert float(alignment_loss(changed, target)) == pytest.approx(float(alignment_loss(other, target)))


def data_with_links(tmp_path, links: list[str], pairs=None, reverse=False):
    pairs = pairs or [("the cat sleeps .", "le chat dort ."), ("a dog", "un chien")]
    train = write_tsv(tmp_path / "train.tsv", pairs)
    (tmp_path / "train.align").write_text("".join(line + "\n" for line in links))
    dm = TranslationDataModule(
        str(train), valid_ratio=0.0, src_tokenizer=WordTokenizer(split_punctuation=True),
        alignments_path=str(tmp_path / "train.align"), reverse=reverse,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def test_word_links_become_normalised_token_targets(tmp_path):
    dm = data_with_links(tmp_path, ["0-0 1-1 2-2 3-3", "0-0 1-1 0-1"])
    examples = [dm.datasets["train"][i] for i in range(2)]
    by_source = {ex[2]: ex for ex in examples}
    assert sorted(by_source["the cat sleeps ."][4]) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert sorted(by_source["a dog"][4]) == [(0, 0), (1, 0), (1, 1)]  # "chien" from "a" and "dog"
    batch = collate([by_source["a dog"], by_source["the cat sleeps ."]])
    assert batch.alignment.shape == (2, 5, 4)  # [batch, longest target + <eos>, longest source]
    assert torch.allclose(batch.alignment[0, 1], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    assert batch.alignment[0, 2].sum() == 0  # <eos> has no link
    assert dm.stats["aligned_pairs"] == 2


def test_with_data_reverse_the_files_links_are_turned_round(tmp_path):
    # the links name the first column's word first: "a"-"un", "dog"-"chien", "a"-"chien"
    dm = data_with_links(tmp_path, ["0-0 1-1 2-2 3-3", "0-0 1-1 0-1"], reverse=True)
    by_source = {ex[2]: ex for ex in (dm.datasets["train"][i] for i in range(2))}
    # the model reads "un chien" and writes "a dog": (target token, source token)
    assert sorted(by_source["un chien"][4]) == [(0, 0), (0, 1), (1, 1)]
    with pytest.raises(
        DataError, match=r"train.align:2: link 2-0 is out of range: .* 2 words in its first column"
    ):
        data_with_links(tmp_path, ["0-0", "2-0"], reverse=True)


def test_a_links_file_with_another_line_count_names_both_files(tmp_path):
    with pytest.raises(DataError, match=r"train.align has 1 lines but .*train.tsv has 2 pairs"):
        data_with_links(tmp_path, ["0-0"])


def test_a_link_outside_its_pair_is_refused_with_its_line(tmp_path):
    with pytest.raises(DataError, match=r"train.align:2: link 2-0 is out of range"):
        data_with_links(tmp_path, ["0-0", "2-0"])


def test_the_loss_weight_without_links_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="data.alignments_path is not set"):
        validate_train_config(compose_config(overrides=["model.alignment_loss_weight=1.0"]))


@pytest.mark.slow
def test_guided_alignment_trains_the_attention_toward_the_links(tmp_path):
    """On the reverse task the true links are known (source word i is target word n-1-i): a few steps with
    the guided loss put more attention on them than the same steps without it."""
    task = write_tiny_task(tmp_path)
    lines = task["train"].read_text().splitlines()
    links = [
        " ".join(f"{i}-{len(s.split()) - 1 - i}" for i in range(len(s.split())))
        for s, _ in (ln.split("\t") for ln in lines)
    ]
    (tmp_path / "train.align").write_text("".join(line + "\n" for line in links))
    masses = []
    for weight in (0.0, 1.0):
        overrides = [*tiny_overrides(task, tmp_path / f"logs{weight}"), "++trainer.max_steps=24",
                     f"data.alignments_path={tmp_path / 'train.align'}", f"model.alignment_loss_weight={weight}",
                     "model.optimizer.lr=0.01"]  # fmt: skip
        train_here(overrides, tmp_path / f"run{weight}")
        (ckpt,) = (tmp_path / f"run{weight}").glob("checkpoints/last.ckpt")
        from src.checkpoint import load_model

        loaded = load_model(ckpt)
        src, tgt = lines[0].split("\t")
        ids = torch.tensor([loaded.codec.encode_src(src)])
        tgt_in = torch.tensor([[2, *loaded.codec.encode_tgt(tgt)]])
        with torch.no_grad():
            _, attn = loaded.net(ids, torch.tensor([ids.size(1)]), tgt_in)
        n = ids.size(1)
        masses.append(float(sum(attn[0, 0, t, n - 1 - t] for t in range(n)) / n))
    assert masses[1] > masses[0] + 0.05
