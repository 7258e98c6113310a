"""Attention as alignment: the files, AER, word-level attention, extraction, symmetrisation, `python -m src.align`."""

import json
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from src.align import align_pairs
from src.aligner import Aligner, tokenize_words
from src.alignment import (
    GoldLinks,
    TokenAttention,
    align,
    alignment_scores,
    check_gold,
    extract_links,
    format_layer_head_table,
    grow_diag_final,
    read_gold,
    read_pairs,
    read_pharaoh,
    scores_by_layer_head,
    select_attention,
    symmetrize,
    word_attention,
)
from src.checkpoint import load_model
from src.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer
from src.entry import user_errors_exit
from src.errors import ConfigError, DataError
from src.plotting import score_grid_figure
from tests.conftest import compose_config, one_step_checkpoint, run_entry

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gold_links(sure: set, possible: set = frozenset()) -> GoldLinks:
    return GoldLinks(sure=frozenset(sure), possible=frozenset(sure | possible))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ AER


def test_aer_precision_and_recall_equal_the_hand_computed_values():
    gold = [
        gold_links({(0, 0), (1, 1)}, possible={(1, 2)}),
        gold_links({(0, 1)}, possible={(1, 0)}),
    ]
    predicted = [{(0, 0), (1, 2), (2, 2)}, {(0, 1)}]
    # |A| = 4, |S| = 3, |A ∩ S| = 1 + 1 = 2, |A ∩ P| = 2 + 1 = 3
    scores = alignment_scores(predicted, gold)
    assert scores.precision == pytest.approx(100 * 3 / 4)
    assert scores.recall == pytest.approx(100 * 2 / 3)
    assert scores.aer == pytest.approx(100 * (1 - 5 / 7))
    assert (scores.links, scores.sure, scores.possible) == (4, 3, 5)


def test_possible_links_cost_no_precision_and_are_not_needed_for_recall():
    gold = [gold_links({(0, 0)}, possible={(1, 1)})]
    assert alignment_scores([{(0, 0)}], gold).aer == 0.0
    assert alignment_scores([{(0, 0), (1, 1)}], gold).aer == 0.0
    only_possible = alignment_scores([{(1, 1)}], gold)
    assert (only_possible.precision, only_possible.recall) == (100.0, 0.0)


# --------------------------------------------------------------------------------------------- files


def test_gold_links_are_read_one_based_with_sure_and_possible_apart(tmp_path):
    path = write(tmp_path / "gold", "1-1 2p3 3-2\n\n2-1\n")
    assert read_gold(path) == [
        gold_links({(0, 0), (2, 1)}, possible={(1, 2)}),
        gold_links(set()),
        gold_links({(1, 0)}),
    ]


def test_gold_index_base_zero_reads_indices_as_they_are(tmp_path):
    path = write(tmp_path / "gold", "0-0 1p2\n")
    assert read_gold(path, index_base=0) == [gold_links({(0, 0)}, possible={(1, 2)})]


def test_tsv_and_fast_align_pairs_give_the_same_words(tmp_path):
    tsv = write(tmp_path / "pairs.tsv", "the cat\tle  chat\r\nhello !\tbonjour !\n")
    bars = write(tmp_path / "pairs.txt", "the cat ||| le  chat \nhello ! ||| bonjour !   \n")
    expected = [(["the", "cat"], ["le", "chat"]), (["hello", "!"], ["bonjour", "!"])]
    assert read_pairs(tsv) == read_pairs(bars) == expected


def test_pharaoh_lines_are_read_back(tmp_path):
    assert read_pharaoh(write(tmp_path / "a", "0-0 1-2\n\n2-1\n")) == [{(0, 0), (1, 2)}, set(), {(2, 1)}]


# ------------------------------------------------------------------------------ word-level attention


def test_word_attention_sums_source_pieces_and_averages_target_pieces():
    # source words "ab c" as tokens a b c; target words "x yz" as tokens x y z (+ the <eos> step)
    weights = torch.tensor(
        [
            [0.1, 0.2, 0.7],  # predicts x
            [0.5, 0.3, 0.2],  # predicts y
            [0.1, 0.3, 0.6],  # predicts z
            [0.6, 0.3, 0.1],  # predicts <eos>
        ]
    )
    attention = TokenAttention(weights[None, None], [0, 0, 1], [0, 1, 1], num_src_words=2, num_tgt_words=2)
    expected = torch.tensor([[0.1 + 0.2, 0.7], [(0.8 + 0.4) / 2, (0.2 + 0.6) / 2]])
    torch.testing.assert_close(word_attention(attention)[0, 0], expected)


def test_tokens_of_no_word_drop_out_and_a_word_without_tokens_gets_no_link():
    weights = torch.tensor([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])  # source tokens: a, space, b
    attention = TokenAttention(weights[None, None], [0, None, 1], [0], num_src_words=3, num_tgt_words=2)
    words = word_attention(attention)[0, 0]
    torch.testing.assert_close(words, torch.tensor([[0.2, 0.3, 0.0], [0.0, 0.0, 0.0]]))
    assert extract_links(words, "argmax") == {(1, 0)}


def test_shift_reads_the_step_that_receives_the_target_word():
    # row t's attention points at source word t: predicting step t -> t, receiving step t + 1 -> t + 1
    weights = torch.eye(4)  # 3 target words + the <eos> step, 4 source words
    attention = TokenAttention(weights[None, None], [0, 1, 2, 3], [0, 1, 2], num_src_words=4, num_tgt_words=3)
    assert align(attention, "argmax") == {(0, 0), (1, 1), (2, 2)}
    assert align(attention, "shift") == {(1, 0), (2, 1), (3, 2)}


def test_argmax_links_each_target_word_once_and_threshold_every_weight_at_least_it():
    weights = torch.tensor([[0.6, 0.35, 0.05], [0.1, 0.2, 0.7]])  # [tgt_words, src_words]
    assert extract_links(weights, "argmax") == {(0, 0), (2, 1)}
    assert extract_links(weights, "threshold", threshold=0.3) == {(0, 0), (1, 0), (2, 1)}


def test_a_layer_or_head_is_chosen_by_index_or_averaged():
    weights = torch.arange(2 * 3 * 1 * 1, dtype=torch.float).view(2, 3, 1, 1)  # [layers, heads, 1, 1]
    assert select_attention(weights, layer=-1, head=0).item() == 3.0
    assert select_attention(weights, layer=0, head="mean").item() == 1.0
    assert select_attention(weights, layer="mean", head="mean").item() == 2.5


def test_the_best_layer_and_head_is_the_one_that_aligns_like_the_gold():
    # 2 layers x 2 heads; only layer 1 head 0 puts each target word on its gold source word
    good, bad = torch.eye(3)[[0, 1, 2, 0]], torch.eye(3)[[2, 0, 1, 1]]
    weights = torch.stack([torch.stack([bad, bad]), torch.stack([good, bad])])  # [2, 2, 4, 3]
    attention = TokenAttention(weights, [0, 1, 2], [0, 1, 2], num_src_words=3, num_tgt_words=3)
    grid = scores_by_layer_head([attention], [gold_links({(0, 0), (1, 1), (2, 2)})])
    assert grid.layers == [0, 1, "mean"] and grid.heads == [0, 1, "mean"]
    assert grid.best() == (1, 0)
    assert grid.scores[1, 0].aer == 0.0 and grid.scores[0, 0].aer == 100.0
    assert "**0.0**" in format_layer_head_table(grid)


def test_the_layer_head_heatmap_labels_its_rows_and_columns():
    figure = score_grid_figure([[10.0, 20.0, 15.0], [30.0, 5.0, 17.5]], ["0", "1"], ["0", "1", "mean"])
    (ax, _colorbar) = figure.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "mean"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
    assert [t.get_text() for t in ax.texts] == ["10.0", "20.0", "15.0", "30.0", "5.0", "17.5"]
    plt.close(figure)
    with pytest.raises(ValueError, match="do not fit"):
        score_grid_figure([[1.0, 2.0]], ["0"], ["0"])


# ------------------------------------------------------------------------------------ tokenization


def test_word_tokenizer_pieces_belong_to_the_word_they_split():
    tokens, owners = tokenize_words(WordTokenizer(lowercase=True, split_punctuation=True), ["Don't", "go."])
    assert tokens == ["don", "'", "t", "go", "."]
    assert owners == [0, 0, 0, 1, 1]


def test_char_tokenizer_spaces_belong_to_no_word():
    tokens, owners = tokenize_words(CharTokenizer(), ["ab", "c"])
    assert tokens == ["a", "b", CharTokenizer.SPACE, "c"]
    assert owners == [0, 0, None, 1]


def test_sentencepiece_word_by_word_reads_what_the_whole_sentence_gives():
    tokenizer = SentencePieceTokenizer(vocab_size=40)
    tokenizer.fit(["the cat sat on the mat .", "a dog ate my homework !"] * 20)
    words = ["the", "doggy", "sat", ",", "homework", "!"]
    tokens, owners = tokenize_words(tokenizer, words)
    assert tokens == tokenizer.tokenize(" ".join(words))
    assert len(set(owners)) == len(words) and owners == sorted(owners)


# ------------------------------------------------------------------------------------ symmetrisation


def test_symmetrisations_combine_the_two_directions():
    forward = {(0, 0), (1, 1), (0, 1), (3, 3)}
    reverse = {(0, 0), (1, 1), (2, 1)}
    assert symmetrize(forward, reverse, "intersection") == {(0, 0), (1, 1)}
    assert symmetrize(forward, reverse, "union") == forward | reverse
    # (2, 1) neighbours (1, 1) and aligns source word 2: grown; (0, 1) links two aligned words: left out;
    # (3, 3) neighbours nothing but aligns two unaligned words: added by "final"
    assert grow_diag_final(forward, reverse) == {(0, 0), (1, 1), (2, 1), (3, 3)}


# ------------------------------------------------------------------------------------- the command


RNN_SIZES = ("encoder.hidden_size=8", "decoder.hidden_size=8")
TRANSFORMER = (
    "encoder=transformer",
    "decoder=transformer",
    "attention=multihead",
    "encoder.d_model=8",
    "encoder.num_heads=2",
    "encoder.num_layers=1",
    "encoder.d_ff=16",
    "decoder.d_model=8",
    "decoder.num_heads=2",
    "decoder.num_layers=2",
    "decoder.d_ff=16",
    "attention.hidden_size=8",
    "attention.num_heads=2",
)


def align_in_process(ckpt: Path, tmp_path: Path, *overrides: str) -> tuple[float | None, Path]:
    """Run the command in this process; returns its AER and its run folder."""
    run_dir = tmp_path / "run"
    cfg = compose_config("align", [f"ckpt_path={ckpt}", f"paths.output_dir={run_dir}", *overrides])
    return align_pairs(cfg), run_dir


@pytest.fixture
def digits(tmp_path: Path) -> dict[str, Path]:
    """Three reversed-digit pairs and their gold links (the reverse task aligns source i to target n-1-i)."""
    return {
        "pairs": write(tmp_path / "pairs.tsv", "1 2 3\t3 2 1\n4 5 6 7\t7 6 5 4\n8 9\t9 8\n"),
        "gold": write(tmp_path / "gold.txt", "1-3 2-2 3-1\n1-4 2-3 3p2 4-1\n1-2 2-1\n"),
    }


@pytest.mark.slow
def test_the_command_writes_pharaoh_links_and_their_scores(tiny_checkpoint, tmp_path, digits):
    shutil.copy(tiny_checkpoint["ckpt"], tmp_path / "model.ckpt")
    result = run_entry(
        "src.align",
        "ckpt_path=model.ckpt",
        f"input={digits['pairs']}",
        f"gold={digits['gold']}",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "align" / "runs").iterdir()
    lines = (run_dir / "alignments.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    links = read_pharaoh(run_dir / "alignments.txt")
    assert [len(pair) for pair in links] == [3, 4, 2]  # argmax: one link per target word
    assert all(0 <= i < n and 0 <= j < n for pair, n in zip(links, (3, 4, 2), strict=True) for i, j in pair)
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    expected = alignment_scores(links, read_gold(digits["gold"]))
    assert scores["aer"] == pytest.approx(expected.aer)
    assert scores["recall"] == pytest.approx(expected.recall)
    assert f"AER = {expected.aer:.1f}" in result.stdout + result.stderr


def test_fast_align_input_gives_the_same_links_as_tsv(tiny_checkpoint, tmp_path, digits):
    bars = write(tmp_path / "pairs.src-tgt", "1 2 3 ||| 3 2 1\n4 5 6 7 ||| 7 6 5 4\n8 9 ||| 9 8\n")
    _, tsv_run = align_in_process(tiny_checkpoint["ckpt"], tmp_path / "tsv", f"input={digits['pairs']}")
    _, bars_run = align_in_process(tiny_checkpoint["ckpt"], tmp_path / "bars", f"input={bars}")
    assert (tsv_run / "alignments.txt").read_text() == (bars_run / "alignments.txt").read_text()
    assert "aer" not in json.loads((tsv_run / "scores.json").read_text())  # no gold, no scores


def test_forced_decoding_in_batches_equals_one_pair_at_a_time(tiny_checkpoint, digits):
    loaded = load_model(tiny_checkpoint["ckpt"])
    pairs = read_pairs(digits["pairs"])
    batched = Aligner(loaded.net, loaded.codec, batch_size=3).attention(pairs)
    alone = Aligner(loaded.net, loaded.codec, batch_size=1).attention(pairs)
    for a, b in zip(batched, alone, strict=True):
        assert a.weights.shape == (1, 1, len(a.tgt_words) + 1, len(a.src_words))
        torch.testing.assert_close(a.weights, b.weights)


def test_a_transformer_is_scored_by_layer_and_head_with_a_heatmap(tiny_checkpoint, tmp_path, digits):
    ckpt = one_step_checkpoint(tiny_checkpoint, tmp_path, *TRANSFORMER)
    aer, run_dir = align_in_process(
        ckpt, tmp_path, f"input={digits['pairs']}", f"gold={digits['gold']}", "layer=0", "head=1"
    )
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    cells = {(cell["layer"], cell["head"]): cell["aer"] for cell in scores["by_layer_head"]}
    assert set(cells) == {(layer, head) for layer in (0, 1, "mean") for head in (0, 1, "mean")}
    assert aer == scores["aer"] == cells[0, 1]  # the written alignment is the chosen layer and head
    best = scores["best_layer_head"]
    assert best["aer"] == min(cells.values()) == cells[best["layer"], best["head"]]
    assert (run_dir / "aer_by_layer_head.png").read_bytes().startswith(PNG_MAGIC)


def test_a_reverse_model_is_symmetrised(tiny_checkpoint, tmp_path, digits):
    ckpt = tiny_checkpoint["ckpt"]  # digits both ways: the reverse task is its own inverse
    _, run_dir = align_in_process(
        ckpt,
        tmp_path,
        f"input={digits['pairs']}",
        f"gold={digits['gold']}",
        f"reverse_ckpt_path={ckpt}",
        "symmetrize=intersection",
    )
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert set(scores["directions"]) == {"forward", "reverse", "intersection", "union", "grow-diag-final"}
    directions = scores["directions"]
    assert directions["intersection"]["links"] <= directions["grow-diag-final"]["links"]
    assert directions["grow-diag-final"]["links"] <= directions["union"]["links"]
    assert scores["alignment"] == "intersection" and scores["aer"] == directions["intersection"]["aer"]


def test_a_model_trained_with_data_reverse_is_named_when_it_is_given_as_the_forward_model(
    tiny_checkpoint, tmp_path, digits, caplog
):
    reverse = one_step_checkpoint(tiny_checkpoint, tmp_path, *RNN_SIZES, "data.reverse=true")
    align_in_process(tiny_checkpoint["ckpt"], tmp_path / "pair", f"input={digits['pairs']}",
                     f"reverse_ckpt_path={reverse}")  # fmt: skip
    assert "data.reverse=true" not in caplog.text  # where it belongs: no warning
    align_in_process(reverse, tmp_path / "forward", f"input={digits['pairs']}")
    assert "was trained with data.reverse=true" in caplog.text and "reverse_ckpt_path" in caplog.text


# --------------------------------------------------------------------------------------------- errors


def test_a_model_without_attention_exits_with_a_clear_message(tiny_checkpoint, tmp_path, digits, caplog):
    ckpt = one_step_checkpoint(tiny_checkpoint, tmp_path, *RNN_SIZES, "attention=none")
    with pytest.raises(SystemExit) as exit_info:
        user_errors_exit(align_in_process)(ckpt, tmp_path, f"input={digits['pairs']}")
    assert exit_info.value.code == 2
    assert "no attention to read alignments from" in caplog.text
    assert "attention=none" in caplog.text


def test_a_gold_file_with_fewer_lines_names_the_pair_without_gold(tiny_checkpoint, tmp_path, digits):
    short = write(tmp_path / "short.gold", "1-3 2-2 3-1\n1-4\n")
    pairs = re.escape(str(digits["pairs"]))
    with pytest.raises(
        DataError, match=rf"2 lines but {pairs} has 3 sentence pairs: line 3 of {pairs} has no"
    ):
        align_in_process(tiny_checkpoint["ckpt"], tmp_path, f"input={digits['pairs']}", f"gold={short}")


def test_a_gold_file_with_more_lines_names_its_extra_line(tmp_path):
    pairs = [(["a"], ["b"])]
    with pytest.raises(DataError, match="line 2 of gold.txt has no sentence pair"):
        check_gold([gold_links(set()), gold_links(set())], pairs, "gold.txt", "pairs.tsv")


@pytest.mark.parametrize("link", ["1x2", "1-", "-1", "1-2-3", "a-b", "1P2"])
def test_a_malformed_gold_link_names_the_file_and_line(tmp_path, link):
    path = write(tmp_path / "gold", f"1-1\n1-1 {link}\n")
    with pytest.raises(DataError, match=rf"gold:2: '{link}' is not a gold link"):
        read_gold(path)


def test_a_zero_index_in_a_one_based_gold_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"gold:1: link 0-1 has an index below 1.*gold_index_base=0"):
        read_gold(write(tmp_path / "gold", "0-1\n"))


def test_a_gold_link_outside_its_pair_names_the_file_and_line(tiny_checkpoint, tmp_path, digits):
    gold = write(tmp_path / "gold.txt", "1-3 2-2 3-1\n1-4 5-1\n1-2 2-1\n")
    with pytest.raises(DataError, match=r"gold.txt:2: link 5-1 is out of range.*4 source and 4 target words"):
        align_in_process(tiny_checkpoint["ckpt"], tmp_path, f"input={digits['pairs']}", f"gold={gold}")


def test_a_pair_line_without_separator_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "pairs.tsv", "a\tb\nc d\n")
    with pytest.raises(DataError, match=r"pairs.tsv:2: expected 'source<TAB>target' \(the format of line 1"):
        read_pairs(path)
    with pytest.raises(
        DataError, match=r"pairs.tsv:1: expected 'source \|\|\| target' \(input_format=fast_align"
    ):
        read_pairs(path, "fast_align")


def test_a_pair_with_an_empty_side_names_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"pairs.txt:1: the target side has no words"):
        read_pairs(write(tmp_path / "pairs.txt", "a b |||   \n"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method=best", "method=best is unknown"),
        ("layer=3", "layer=3 is out of range: the model of ckpt_path has 1 attention layers"),
        ("head=first", "head=first is invalid"),
        ("method=threshold threshold=0", "threshold=0 is out of range"),
    ],
)
def test_invalid_options_are_config_errors(tiny_checkpoint, tmp_path, digits, override, message):
    with pytest.raises(ConfigError, match=message):
        align_in_process(tiny_checkpoint["ckpt"], tmp_path, f"input={digits['pairs']}", *override.split())


@pytest.mark.slow
def test_the_align_command_scores_the_baseline_beside_the_model(tiny_checkpoint, tmp_path, digits):
    pytest.importorskip("eflomal")
    align_in_process(
        tiny_checkpoint["ckpt"],
        tmp_path,
        f"input={digits['pairs']}",
        f"gold={digits['gold']}",
        "baseline=eflomal",
    )
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert set(scores["directions"]) == {"forward", "eflomal"}
    assert 0.0 <= scores["directions"]["eflomal"]["aer"] <= 100.0
    assert scores["aer"] == scores["directions"]["forward"]["aer"]  # the model's links stay the output


def test_eflomal_alone_writes_the_links_without_a_checkpoint(tmp_path, digits):
    """aligner=eflomal: the statistical aligner writes one line per pair on the pairs' words, no model."""
    pytest.importorskip("eflomal")
    run_dir = tmp_path / "run"
    corpus = write(tmp_path / "corpus.tsv", "".join(f"{i} {i + 1}\t{i + 1} {i}\n" for i in range(1, 9)) * 20)
    cfg = compose_config(
        "align",
        [
            "aligner=eflomal",
            f"input={digits['pairs']}",
            f"gold={digits['gold']}",
            f"baseline_corpus={corpus}",
            f"paths.output_dir={run_dir}",
        ],
    )
    aer = align_pairs(cfg)
    links = read_pharaoh(run_dir / "alignments.txt")
    assert len(links) == 3
    assert all(0 <= i < n and 0 <= j < n for pair, n in zip(links, (3, 4, 2), strict=True) for i, j in pair)
    scores = json.loads((run_dir / "scores.json").read_text())
    assert scores["aligner"] == "eflomal" and scores["ckpt_path"] is None
    assert set(scores["directions"]) == {"eflomal"} and scores["aer"] == aer


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("aligner=giza", "aligner=giza is unknown"),
        ("aligner=eflomal baseline=eflomal", "baseline=eflomal does not go with aligner=eflomal"),
        ("aligner=model", "ckpt_path is missing"),
    ],
)
def test_aligner_choices_are_checked(tmp_path, digits, override, message):
    cfg = compose_config(
        "align", [f"input={digits['pairs']}", f"paths.output_dir={tmp_path}", *override.split()]
    )
    with pytest.raises(ConfigError, match=message):
        align_pairs(cfg)
