"""The watching callbacks, read back with TensorBoard's own reader from short real training runs."""

import json
import math
from pathlib import Path

import pytest
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import (
    HISTOGRAMS,
    IMAGES,
    SCALARS,
    TENSORS,
    EventAccumulator,
)
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from src.callbacks.gradient_norms import parameter_parts
from src.callbacks.run_metrics import RunMetrics
from src.callbacks.throughput import target_tokens
from src.callbacks.translation_samples import markdown_table
from src.callbacks.watched import first_distinct_sources, translate_watched
from src.data.batch import collate
from src.run_columns import METRICS
from tests.conftest import compose_config, run_entry, write_reverse_task, write_tsv

K = 2  # watched sentences
TINY_RNN = (
    "model.net.embedding_size=16",
    "encoder.hidden_size=32",
    "decoder.hidden_size=32",
    "data.batch_size=64",
    "test=false",
)
TINY = (*TINY_RNN, "attention.hidden_size=32")  # Bahdanau
TINY_TRANSFORMER = (
    "encoder=transformer",
    "attention=multihead",
    "decoder=transformer",
    "model.net.embedding_size=16",
    *(
        f"{side}.{key}"
        for side in ("encoder", "decoder")
        for key in ("d_model=16", "num_layers=1", "num_heads=2", "d_ff=32")
    ),
    "attention.hidden_size=16",
    "attention.num_heads=2",
    "data.batch_size=64",
    "test=false",
)
SHORT = (  # one validation of one batch
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
)
PARTS = ("embeddings", "encoder", "attention", "decoder", "output_layer")
CLIP = 0.01


class Run:
    """A finished training run: its output, its folder and its TensorBoard events."""

    def __init__(
        self, directory: Path, *overrides: str, valid_pairs: list[tuple[str, str]] | None = None
    ) -> None:
        task = write_reverse_task(directory)
        if valid_pairs is not None:
            write_tsv(task["valid"], valid_pairs)
        self.valid_path = task["valid"]
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OMP_NUM_THREADS", "1")  # a tiny model: more threads only wait on each other
            self.result = run_entry(
                "src.train",
                f"data.train_path={task['train']}",
                f"data.valid_path={task['valid']}",
                "data.test_path=null",
                *overrides,
                f"paths.log_dir={directory}",
            )
        assert self.result.returncode == 0, self.result.stderr[-3000:]
        (self.folder,) = directory.glob("train/runs/*")
        self.events = EventAccumulator(
            str(self.folder / "tensorboard"), size_guidance={SCALARS: 0, IMAGES: 0, TENSORS: 0, HISTOGRAMS: 0}
        )
        self.events.Reload()

    def tags(self, kind: str) -> list[str]:
        return self.events.Tags()[kind]

    def values(self, tag: str) -> list[float]:
        return [event.value for event in self.events.Scalars(tag)]

    def steps(self, tag: str, kind: str = SCALARS) -> list[int]:
        read = {SCALARS: self.events.Scalars, IMAGES: self.events.Images, TENSORS: self.events.Tensors}[kind]
        return [event.step for event in read(tag)]

    @property
    def validation_steps(self) -> list[int]:
        return self.steps("val/bleu")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """LSTM + Bahdanau, 2 epochs of 10 batches, every callback on (histograms too)."""
    return Run(
        tmp_path_factory.mktemp("watched"),
        *TINY,
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=10",
        "trainer.log_every_n_steps=5",
        f"trainer.gradient_clip_val={CLIP}",
        "callbacks.throughput.window_size=5",
        "callbacks.histograms.every_n_steps=10",
        f"callbacks.attention_heatmaps.num_sentences={K}",
        f"callbacks.translation_samples.num_sentences={K}",
        "callbacks.attention_statistics.num_sentences=20",
    )


# ------------------------------------------------------------------------------------ scalars


@pytest.mark.slow
def test_training_scalars_are_logged_with_finite_values(run: Run):
    tags = [
        "train/loss",
        "val/loss",
        "val/ppl",
        "val/bleu",
        "val/chrf",
        "lr-Adam",
        "train/device/items_per_sec",
        "attention/entropy",
        "attention/monotonicity",
        "attention/coverage",
        "grad_norm/total",
        *(f"grad_norm/{part}" for part in PARTS),
    ]
    for tag in tags:
        values = run.values(tag)
        assert values and all(math.isfinite(v) for v in values), tag


@pytest.mark.slow
def test_validation_scalars_line_up_with_lightnings_steps(run: Run):
    assert len(run.validation_steps) == 2
    for tag in ("attention/entropy", "attention/coverage", "hp/best_val_loss"):
        assert run.steps(tag)[-2:] == run.validation_steps, tag


@pytest.mark.slow
def test_throughput_counts_about_one_target_sentence_of_tokens_per_sentence(run: Run):
    tokens, sentences = run.values("train/device/items_per_sec"), run.values("train/device/samples_per_sec")
    # reverse task: 3 to 6 digits + <eos> per target sentence
    assert all(4.0 <= t / s <= 7.0 for t, s in zip(tokens, sentences, strict=True))


def test_target_tokens_count_real_tokens_with_eos_and_no_padding():
    batch = collate([([4, 5], [4, 5, 6], "a b", "c d e"), ([4], [4], "a", "c")])
    assert batch.tgt_out.numel() == 8  # 2 sentences x (3 tokens + <eos>), one padded
    assert target_tokens(batch) == 4 + 2


@pytest.mark.slow
def test_gradient_norms_are_logged_every_n_steps_before_clipping(run: Run):
    assert run.steps("grad_norm/total") == [0, 5, 10, 15]
    totals = run.values("grad_norm/total")
    parts = [run.values(f"grad_norm/{part}") for part in PARTS]
    for step, total in enumerate(totals):
        assert total == pytest.approx(math.sqrt(sum(part[step] ** 2 for part in parts)), rel=1e-4)
    assert max(totals) > CLIP  # clipped gradients could not be larger than the clip value


def test_parameter_parts_split_a_transformer_into_its_five_parts_without_overlap():
    net = instantiate(compose_config("train", list(TINY_TRANSFORMER)).model.net)(
        src_vocab_size=12, tgt_vocab_size=12
    )
    parts = parameter_parts(net)
    assert set(parts) == set(PARTS)
    ids = [id(p) for params in parts.values() for p in params]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())
    cross_attention = {id(p) for layer in net.decoder.layers for p in layer.cross_attention.parameters()}
    assert {id(p) for p in parts["attention"]} == cross_attention  # self-attention stays in the decoder


@pytest.mark.slow
def test_hparams_metrics_describe_the_validation_with_the_best_bleu(run: Run):
    bleu = run.values("val/bleu")
    best = bleu.index(max(bleu))
    assert run.values("hp/best_val_bleu")[-1] == pytest.approx(bleu[best])
    assert run.values("hp/best_val_chrf")[-1] == pytest.approx(run.values("val/chrf")[best])
    assert run.values("hp/best_val_loss")[-1] == pytest.approx(run.values("val/loss")[best])
    # Lightning logs val/bleu one step below the optimizer steps taken (see src.callbacks.watched)
    assert run.values("hp/best_step")[-1] == run.validation_steps[best] + 1
    assert run.values("hp/best_epoch")[-1] == best + 1  # 2 epochs, one validation at the end of each


@pytest.mark.slow
def test_hparams_metrics_hold_the_training_time_and_target_tokens_per_second(run: Run):
    (time_s,), (per_second,) = run.values("hp/train_time_s")[-1:], run.values("hp/train_tokens_per_s")[-1:]
    assert 0 < time_s < 600 and per_second > 0
    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["train_time_s"] == pytest.approx(time_s) and summary[
        "train_tokens_per_s"
    ] == pytest.approx(per_second)


# ------------------------------------------------------------------ images, text, histograms


@pytest.mark.slow
def test_attention_heatmaps_one_image_per_watched_sentence_and_validation(run: Run):
    assert sorted(run.tags(IMAGES)) == [f"attention/sentence_{i}" for i in range(K)]
    for tag in run.tags(IMAGES):
        assert run.steps(tag, IMAGES) == run.validation_steps
        assert all(image.width > 100 and image.height > 100 for image in run.events.Images(tag))


@pytest.mark.slow
def test_translation_samples_are_a_table_of_the_first_validation_sentences(run: Run):
    assert run.steps("translations/text_summary", TENSORS) == run.validation_steps
    event = run.events.Tensors("translations/text_summary")[-1]
    table = tensor_util.make_ndarray(event.tensor_proto).item().decode()
    lines = table.splitlines()
    first_source, first_reference = run.valid_path.read_text().splitlines()[0].split("\t")
    assert lines[0] == "| source | reference | hypothesis |"
    assert len(lines) == 2 + K
    assert lines[2].startswith(f"| {first_source} | {first_reference} | ")


@pytest.mark.slow
def test_watched_sentences_are_distinct_sources_when_the_validation_set_repeats_one(tmp_path: Path):
    pairs = [
        ("1 2 3", "3 2 1"),
        ("1 2 3", "3 2 1 ."),
        ("4 5 6", "6 5 4"),
        ("4 5 6", "6 5 4 ."),
        ("7 8 9", "9 8 7"),
    ]
    run = Run(tmp_path, *TINY, *SHORT, f"callbacks.translation_samples.num_sentences={K}", valid_pairs=pairs)
    event = run.events.Tensors("translations/text_summary")[-1]
    rows = tensor_util.make_ndarray(event.tensor_proto).item().decode().splitlines()[2:]
    assert [row.split(" | ")[:2] for row in rows] == [["| 1 2 3", "3 2 1"], ["| 4 5 6", "6 5 4"]]


def test_testing_the_best_checkpoint_keeps_the_metrics_training_ended_with():
    # trainer.test(ckpt_path=best) loads the callback state saved with best.ckpt, from earlier in training
    tracker = RunMetrics()
    tracker.metrics.update(train_time_s=9.0, best_step=12)
    tracker.load_state_dict({"metrics": {"train_time_s": 4.0, "best_step": 12}, "tokens": 100.0})
    tracker.on_test_start(trainer=None, pl_module=None)
    assert tracker.metrics["train_time_s"] == 9.0 and tracker.state_dict()["tokens"] == 0


def test_first_distinct_sources_keep_the_first_reference_of_each():
    pairs = [("a", "x"), ("a", "y"), ("b", "z"), ("c", "w")]
    assert first_distinct_sources(pairs, 2) == [("a", "x"), ("b", "z")]
    assert first_distinct_sources(pairs, 10) == [("a", "x"), ("b", "z"), ("c", "w")]


def test_watching_callbacks_share_one_translation_per_validation():
    from types import SimpleNamespace

    from src.decoding import Hypothesis

    class Module:  # what translate_watched reads of a TranslationModule: its translator
        def __init__(self) -> None:
            self.calls: list[list[str]] = []
            self.translator = SimpleNamespace(translate=self.translate)

        def translate(self, sources: list[str]) -> list[list[Hypothesis]]:
            self.calls.append(list(sources))
            return [[Hypothesis(tokens=[len(self.calls)], score=0.0, log_prob=0.0)] for _ in sources]

    pairs = [("a", "x"), ("b", "y"), ("a", "z"), ("c", "w")]
    trainer = SimpleNamespace(
        state=SimpleNamespace(stage="validate"),
        sanity_checking=False,
        current_epoch=0,
        global_step=10,
        datamodule=SimpleNamespace(datasets={"valid": SimpleNamespace(pairs=pairs)}),
    )
    module = Module()
    heatmaps, statistics = translate_watched(trainer, module, 2), translate_watched(trainer, module, 2)
    samples = translate_watched(trainer, module, 3)  # watches one more: only that one is translated
    assert module.calls == [["a", "b"], ["c"]]
    assert heatmaps == statistics == samples[:2]
    assert [s.source for s in samples] == ["a", "b", "c"]
    trainer.global_step = 20  # the next validation: the weights have changed, so translate again
    assert translate_watched(trainer, module, 2)[0].hypothesis.tokens == [3]
    assert module.calls[-1] == ["a", "b"]


def test_markdown_table_escapes_pipes_in_cells():
    assert markdown_table(("a", "b"), [("x|y", "z")]).splitlines() == [
        "| a | b |",
        "| --- | --- |",
        "| x\\|y | z |",
    ]


@pytest.mark.slow
def test_weight_and_gradient_histograms_when_switched_on(run: Run):
    tags = run.tags(HISTOGRAMS)
    assert "weights/encoder.rnn.weight_ih_l0" in tags and "gradients/encoder.rnn.weight_ih_l0" in tags
    assert len(run.events.Histograms("weights/output_layer.weight")) == 2  # steps 0 and 10


@pytest.mark.slow
def test_hparams_tab_holds_the_runs_columns_and_the_metric_tags(run: Run):
    content = run.events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    experiment = hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG])
    assert [info.name.tag for info in experiment.metric_infos] == [f"hp/{name}" for name in METRICS]
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert start.hparams["attention"].string_value == "bahdanau"
    assert start.hparams["model.net.embedding_size"].number_value == 16
    assert {info.name for info in experiment.hparam_infos} == set(start.hparams)  # a map: no order
    # summary.json records the same columns, for src.report
    columns = json.loads((run.folder / "summary.json").read_text())["columns"]
    assert list(columns) == [info.name for info in experiment.hparam_infos]


@pytest.mark.slow
def test_progress_bar_shows_the_loss_and_the_last_bleu(run: Run):
    assert "train/loss" in run.result.stdout and "val/bleu" in run.result.stdout


# ---------------------------------------------------------------------- other configurations


@pytest.mark.slow
def test_every_watching_callback_switches_off(tmp_path: Path):
    run = Run(
        tmp_path,
        *TINY,
        *SHORT,
        "~callbacks.throughput",
        "~callbacks.gradient_norms",
        "~callbacks.attention_heatmaps",
        "~callbacks.attention_statistics",
        "callbacks.translation_samples=null",
        "callbacks.hparams=null",
        "callbacks.histograms=null",
    )
    assert run.values("val/bleu")
    assert not run.tags(IMAGES) and not run.tags(TENSORS) and not run.tags(HISTOGRAMS)
    assert not [
        tag
        for tag in run.tags(SCALARS)
        if tag.startswith(("grad_norm/", "attention/", "hp/", "train/device"))
    ]
    with pytest.raises(KeyError):
        run.events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)


@pytest.mark.slow
def test_multi_head_attention_gets_heatmaps_and_statistics(tmp_path: Path):
    run = Run(tmp_path, *TINY_TRANSFORMER, *SHORT, f"callbacks.attention_heatmaps.num_sentences={K}")
    assert sorted(run.tags(IMAGES)) == [f"attention/sentence_{i}" for i in range(K)]
    assert all(
        math.isfinite(run.values(f"attention/{name}")[-1]) for name in ("entropy", "monotonicity", "coverage")
    )
    assert not run.tags(HISTOGRAMS)  # off by default


@pytest.mark.slow
def test_a_model_without_attention_trains_and_says_once_that_there_is_nothing_to_show(tmp_path: Path):
    run = Run(tmp_path, *TINY_RNN, *SHORT, "attention=none")
    assert not run.tags(IMAGES)
    assert not [tag for tag in run.tags(SCALARS) if tag.startswith("attention/")]
    assert run.steps("translations/text_summary", TENSORS)  # the translations still show
    log = (run.folder / "train.log").read_text()
    assert log.count("No attention heatmaps") == 1 and log.count("No attention statistics") == 1
