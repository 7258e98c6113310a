"""`python -m src.visualize`: one attention heatmap PNG per sentence, from the checkpoint alone."""

import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from src.entry import user_errors_exit
from src.errors import ConfigError
from src.visualize import visualize
from tests.conftest import compose_config, one_step_checkpoint, run_entry

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIZES = ("encoder.hidden_size=8", "decoder.hidden_size=8")


def visualize_in_process(ckpt: Path, tmp_path: Path, *overrides: str) -> list[Path]:
    cfg = compose_config("visualize", [f"ckpt_path={ckpt}", f"output_dir={tmp_path / 'png'}", *overrides])
    return visualize(cfg)


@pytest.mark.slow
def test_one_png_per_sentence_from_the_checkpoint_alone(tiny_checkpoint, tmp_path):
    shutil.copy(tiny_checkpoint["ckpt"], tmp_path / "model.ckpt")
    (tmp_path / "more.txt").write_text("9 8 7 6 5\n", encoding="utf-8")
    result = run_entry(
        "src.visualize",
        "ckpt_path=model.ckpt",
        'sentences=["1 2 3", "4 cat 5 6"]',
        "input=more.txt",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "visualize" / "runs").iterdir()
    pngs = sorted(run_dir.glob("*.png"))
    assert [p.name for p in pngs] == ["001_1_2_3.png", "002_4_cat_5_6.png", "003_9_8_7_6_5.png"]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)
    assert "Saved 3 attention heatmaps" in result.stdout


def test_more_source_tokens_make_a_wider_figure(tiny_checkpoint, tmp_path):
    short, long = visualize_in_process(
        tiny_checkpoint["ckpt"], tmp_path, 'sentences=["1 2", "1 2 3 4 5 6 7 8 9"]'
    )
    assert Image.open(long).width > Image.open(short).width


def test_empty_sentence_is_skipped_with_a_warning(tiny_checkpoint, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        saved = visualize_in_process(tiny_checkpoint["ckpt"], tmp_path, 'sentences=["", "1 2 3"]')
    assert [p.name for p in saved] == ["002_1_2_3.png"]
    assert "Sentence 1 is empty" in caplog.text


def test_nothing_to_visualise_is_a_config_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="sentences="):
        visualize_in_process(tiny_checkpoint["ckpt"], tmp_path)


def test_model_without_attention_exits_with_a_clear_message(tiny_checkpoint, tmp_path, caplog):
    ckpt = one_step_checkpoint(tiny_checkpoint, tmp_path, *SIZES, "attention=none")
    with pytest.raises(SystemExit) as exit_info:
        user_errors_exit(visualize_in_process)(ckpt, tmp_path, 'sentences=["1 2 3"]')
    assert exit_info.value.code == 2
    assert "This model has no attention to show" in caplog.text
    assert not (tmp_path / "png").exists()


def test_multihead_attention_is_drawn(tiny_checkpoint, tmp_path):
    ckpt = one_step_checkpoint(
        tiny_checkpoint,
        tmp_path,
        *SIZES,
        "attention=multihead",
        "attention.hidden_size=8",
        "attention.num_heads=2",
    )
    (single,) = visualize_in_process(tiny_checkpoint["ckpt"], tmp_path / "one", 'sentences=["1 2 3"]')
    (multi,) = visualize_in_process(ckpt, tmp_path / "two", 'sentences=["1 2 3"]')
    assert Image.open(multi).width > 2 * Image.open(single).width  # the mean and each head, side by side
