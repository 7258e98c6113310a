"""`python -m src.bench`: the speed benchmark runs (tiny) and writes its report; int8 translation.

Nothing here asserts a speed: machines are noisy. docs/BENCHMARK.md has the measurements.
"""

import json
from pathlib import Path

import pytest
import torch

from src.benchmarks.report import JSON_FILE, MARKDOWN_FILE
from src.benchmarks.training import StepTimer
from src.checkpoint import load_translator
from src.data.batch import Batch
from src.data.vocab import EOS_ID, PAD_ID
from src.models.quantization import quantize_int8
from tests.conftest import compose_config, run_entry
from tests.test_seq2seq import batch, rnn_model


@pytest.mark.slow
def test_tiny_benchmark_writes_json_and_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = run_entry("src.bench", "bench_mode=tiny", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (run_dir,) = (tmp_path / "bench").iterdir()
    results = json.loads((run_dir / JSON_FILE).read_text())
    assert {"machine", "settings", "bleu", "decoding", "training", "naive", "peak_rss_mb"} <= results.keys()
    assert [row["model"] for row in results["training"]] == ["reference", "transformer"]
    for row in results["training"]:
        assert row["raw_tokens_per_s"] > 0 and row["lightning_tokens_per_s"] > 0 and row["raw_vs_naive"] > 0
    assert [row["search"] for row in results["decoding"]] == [
        "greedy",
        "beam 5",
        "greedy, shortlist",
        "beam 5, shortlist",
        "greedy, int8 linear layers",
        "beam 5, int8 linear layers",
        "greedy, int8 + shortlist",
        "beam 5, int8 + shortlist",
        "greedy, float32_matmul_precision=medium",
        "beam 5, float32_matmul_precision=medium",
    ]
    assert all(row["sentences"] == 8 and row["vs_naive"] > 0 for row in results["decoding"])
    # the naive loop is the same model: the same outputs, but for near ties of an untrained model
    assert results["naive"]["same_as_batched"] >= 0.75
    markdown = (run_dir / MARKDOWN_FILE).read_text()
    assert "| reference |" in markdown and "| beam 5 |" in markdown and "Naive baseline" in markdown


def test_int8_model_is_a_quantised_copy_with_close_outputs() -> None:
    model = rnn_model().eval()
    quantized = quantize_int8(model)
    assert isinstance(model.output_layer, torch.nn.Linear)  # the original is untouched
    assert type(quantized.output_layer).__module__.startswith("torch.ao.nn.quantized")
    src, src_len, tgt_in = batch()
    with torch.inference_mode():
        expected, _ = model(src, src_len, tgt_in)
        logits, _ = quantized(src, src_len, tgt_in)
    torch.testing.assert_close(logits, expected, atol=0.05, rtol=0.0)


@pytest.mark.slow
def test_evaluate_translates_with_int8_on_the_cpu(tiny_checkpoint) -> None:
    translator, _ = load_translator(
        compose_config("evaluate", [f"ckpt_path={tiny_checkpoint['ckpt']}", "int8=true", "device=cpu"])
    )
    assert type(translator.net.output_layer).__module__.startswith("torch.ao.nn.quantized")
    assert len(translator.translate_text(["1 2 3", "4 5"])) == 2


def test_step_timer_counts_batches_over_epochs() -> None:
    """`batch_idx` restarts every epoch; the timer's window must not (it once restarted at epoch 2)."""
    tgt = torch.tensor([[5, 6, EOS_ID], [7, EOS_ID, PAD_ID]])  # 5 real target tokens, one padding
    batch = Batch(
        src=tgt, src_len=torch.tensor([3, 2]), tgt_in=tgt, tgt_out=tgt, src_text=["a", "b"], tgt_text=[]
    )
    timer = StepTimer(warmup=2)
    for batch_idx in (0, 1, 2, 0, 1):  # two epochs: 3 batches, then 2
        timer.on_train_batch_end(None, None, None, batch, batch_idx)
    result = timer.result()
    assert (result.steps, result.target_tokens, result.sentences) == (3, 15, 6)


def test_the_training_experiment_is_an_option_of_the_command_line():
    from tests.conftest import compose_config

    cfg = compose_config("bench", ["train_experiment=tatoeba_transformer"])
    assert cfg.train_experiment == "tatoeba_transformer"
