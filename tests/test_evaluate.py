"""`python -m src.evaluate`: scores a checkpoint on a test file, from the checkpoint alone."""

import json
import shutil

import pytest
import sacrebleu

from src.checkpoint import load_translator, read_test_pairs
from src.data.tsv import read_parallel_tsv
from src.entry import user_error_cause
from src.errors import ConfigError, DataError
from src.evaluate import evaluate
from tests.conftest import compose_config, run_entry

pytestmark = pytest.mark.usefixtures("one_thread")


def evaluate_in_process(tiny_checkpoint, tmp_path, *overrides: str) -> dict:
    cfg = compose_config(
        "evaluate", [f"ckpt_path={tiny_checkpoint['ckpt']}", f"paths.output_dir={tmp_path}", *overrides]
    )
    evaluate(cfg)
    return json.loads((tmp_path / "scores.json").read_text())


@pytest.mark.slow
def test_evaluate_from_the_checkpoint_alone_in_an_empty_directory(tiny_checkpoint, tmp_path):
    shutil.copy(tiny_checkpoint["ckpt"], tmp_path / "model.ckpt")
    shutil.copy(tiny_checkpoint["test"], tmp_path / "test.tsv")
    result = run_entry(
        "src.evaluate",
        "ckpt_path=model.ckpt",
        "data.test_path=test.tsv",
        "decode.beam_size=3",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for shown in ("BLEU = ", "chrF = ", "nrefs:1|case:lc|eff:no|tok:13a", "sentences/s (beam 3"):
        assert shown in result.stdout

    (run_dir,) = (tmp_path / "outputs" / "evaluate" / "runs").iterdir()
    hypotheses = (run_dir / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    references = [target for _, target in read_parallel_tsv(tmp_path / "test.tsv").pairs]
    scores = json.loads((run_dir / "scores.json").read_text())
    assert len(hypotheses) == len(references) == scores["sentences"] == 100
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["bleu"] > 5
    assert scores["decode"]["beam_size"] == 3
    assert scores["ckpt_path"] == str(tmp_path / "model.ckpt")
    assert scores["sentences_per_second"] > 0
    assert (run_dir / "evaluate.log").exists()


def test_hypotheses_are_written_in_input_order(tiny_checkpoint, tmp_path):
    evaluate_in_process(
        tiny_checkpoint, tmp_path, f"data.test_path={tiny_checkpoint['test']}", "batch_size=7"
    )
    hypotheses = (tmp_path / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    sources = [source for source, _ in read_parallel_tsv(tiny_checkpoint["test"]).pairs]
    translator, _ = load_translator(compose_config("evaluate", [f"ckpt_path={tiny_checkpoint['ckpt']}"]))
    one_by_one = [translator.translate_text([source])[0] for source in sources[:20]]
    assert hypotheses[:20] == one_by_one


def test_test_path_defaults_to_the_test_split_of_the_training_run(tiny_checkpoint, tmp_path):
    scores = evaluate_in_process(tiny_checkpoint, tmp_path)
    assert scores["test_path"] == str(tiny_checkpoint["test"])


def test_a_model_trained_with_data_reverse_is_scored_on_the_test_file_turned_round(tmp_path):
    test = tmp_path / "test.tsv"
    test.write_text("the cat\tle chat\n", encoding="utf-8")
    trained = {"data": {"test_path": str(test), "reverse": True}}
    assert read_test_pairs(None, trained) == (str(test), [("le chat", "the cat")])
    assert read_test_pairs(str(test), {"data": {}}) == (str(test), [("the cat", "le chat")])
    with pytest.raises(ConfigError, match="data.test_path is missing"):
        read_test_pairs(None, {"data": {"reverse": True}})


def test_bleu_tokenize_none_scores_the_model_tokens(tiny_checkpoint, tmp_path):
    scores = evaluate_in_process(tiny_checkpoint, tmp_path, "bleu_tokenize=none")
    assert scores["bleu_tokenize"] == "none"
    assert "tok:none" in scores["bleu_signature"]


def test_missing_test_file_names_the_option(tiny_checkpoint, tmp_path):
    with pytest.raises(DataError, match="data.test_path"):
        evaluate_in_process(tiny_checkpoint, tmp_path, f"data.test_path={tmp_path / 'nope.tsv'}")


def test_beam_size_zero_is_a_config_error(tiny_checkpoint, tmp_path):
    with pytest.raises(Exception) as raised:  # from inside hydra's instantiate, which wraps it
        evaluate_in_process(tiny_checkpoint, tmp_path, "decode.beam_size=0")
    assert isinstance(user_error_cause(raised.value), ConfigError)
    assert "decode.beam_size=0" in str(user_error_cause(raised.value))


def test_unknown_device_is_a_config_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="device=tpu"):
        evaluate_in_process(tiny_checkpoint, tmp_path, "device=tpu")


@pytest.mark.slow
def test_missing_ckpt_path_exits_with_a_clear_message(tmp_path):
    result = run_entry("src.evaluate", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert "ckpt_path is missing" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_bleu_tokenizer_is_a_config_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="bleu_tokenize=13b is not a sacrebleu tokenizer"):
        evaluate_in_process(tiny_checkpoint, tmp_path, "bleu_tokenize=13b")


def test_scores_by_source_length_are_saved_drawn_and_add_up(tiny_checkpoint, tmp_path):
    scores = evaluate_in_process(tiny_checkpoint, tmp_path, "length_buckets=[3,4,5]")
    rows = scores["by_length"]
    assert [row["bucket"] for row in rows] == ["1-3", "4-4", "5-5", "6+"]
    sources = [source for source, _ in read_parallel_tsv(tiny_checkpoint["test"]).pairs]
    assert [row["sentences"] for row in rows] == [
        sum(low <= len(s.split()) <= (high or 99) for s in sources)
        for low, high in ((1, 3), (4, 4), (5, 5), (6, None))
    ]
    assert sum(row["sentences"] for row in rows) == scores["sentences"]
    hypotheses = (tmp_path / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    references = [target for _, target in read_parallel_tsv(tiny_checkpoint["test"]).pairs]
    fours = [i for i, s in enumerate(sources) if len(s.split()) == 4]
    expected = sacrebleu.corpus_bleu([hypotheses[i] for i in fours], [[references[i] for i in fours]])
    assert rows[1]["bleu"] == pytest.approx(expected.score)
    assert 0.0 <= scores["exact_match"] <= 1.0 and "exact_match" in rows[1]
    assert (tmp_path / "bleu_by_length.png").stat().st_size > 1000


def test_bad_length_buckets_are_a_config_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match=r"length_buckets=\[20, 10\] is invalid"):
        evaluate_in_process(tiny_checkpoint, tmp_path, "length_buckets=[20,10]")
