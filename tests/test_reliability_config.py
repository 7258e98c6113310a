"""Bad configs are rejected before any data is read, with a ConfigError naming the option and the fix."""

import logging

import pytest
import torch
from hydra.errors import ConfigCompositionException, InstantiationException
from omegaconf import OmegaConf

from src.config import set_matmul_precision
from src.entry import null_group_override, user_errors_exit
from src.errors import ConfigError
from src.hardware import cpu_family
from src.schema import validate_train_config
from tests.conftest import compose_config, run_entry

# overrides -> a fragment of the message the user sees
INVALID = {
    "negative_dropout": (
        ["encoder.dropout=-0.1"],
        "encoder.dropout=-0.1 is invalid: it must be a number in [0, 1)",
    ),
    "dropout_of_one": (["attention=multihead", "attention.dropout=1.0"], "attention.dropout=1.0 is invalid"),
    "beam_size_0": (["model.val_generator.beam_size=0"], "model.val_generator.beam_size=0 is invalid"),
    "n_best_above_beam": (
        ["+model.val_generator.n_best=3"],
        "model.val_generator.n_best=3 is out of range: it must be an integer between 1 and "
        "model.val_generator.beam_size=1",
    ),
    "teacher_forcing_1.5": (
        ["model.teacher_forcing.start=1.5"],
        "model.teacher_forcing.start=1.5 is invalid",
    ),
    "heads_not_dividing_attention": (
        ["attention=multihead", "attention.num_heads=3"],
        "attention.num_heads=3 must divide attention.hidden_size=256",
    ),
    "heads_not_dividing_encoder": (
        ["encoder=transformer", "encoder.num_heads=5"],
        "encoder.num_heads=5 must divide encoder.d_model=256",
    ),
    "heads_not_dividing_decoder": (
        ["decoder=transformer", "attention=multihead", "decoder.num_heads=6"],
        "decoder.num_heads=6 must divide decoder.d_model=256",
    ),
    "transformer_with_coverage": (
        ["decoder=transformer", "attention=coverage"],
        "decoder=transformer cannot use attention=coverage",
    ),
    "transformer_without_attention": (
        ["decoder=transformer", "attention=none"],
        "decoder=transformer cannot use attention=none",
    ),
    "luong_dot_size_mismatch": (
        ["attention=luong_dot", "decoder.hidden_size=128"],
        "attention=luong_dot needs the decoder state size (128) to equal the encoder output size (256)",
    ),
    "odd_bidirectional_size": (["encoder.hidden_size=255"], "encoder.hidden_size=255 must be even"),
    "lr_not_a_number": (
        ["model.optimizer.lr=abc"],
        "model.optimizer.lr='abc' is invalid: it must be a number > 0",
    ),
    "negative_lr": (["model.optimizer.lr=-0.1"], "model.optimizer.lr=-0.1 is invalid"),
    "max_epochs_not_a_number": (["trainer.max_epochs=ten"], "trainer.max_epochs='ten' is invalid"),
    "label_smoothing_1": (["model.label_smoothing=1.0"], "model.label_smoothing=1.0 is invalid"),
    "unknown_precision": (["trainer.precision=17"], "trainer.precision=17 is invalid: it must be one of"),
    "unknown_constructor_key": (
        ["+encoder.hiden_size=64"],
        "model.net cannot be built from its config: TypeError: RecurrentEncoder.__init__() got an unexpected "
        "keyword argument 'hiden_size'",
    ),
    "bad_optimizer_argument": (["+model.optimizer.betas=[0.9,1.5]"], "model.optimizer cannot be built"),
    "positions_shorter_than_max_len": (
        ["encoder=transformer", "data.max_len=600"],
        "encoder.max_positions=512 is too small for data.max_len=600",
    ),
    "unknown_nonfinite_policy": (["model.nonfinite_loss=ignore"], "model.nonfinite_loss='ignore' is invalid"),
    "lr_monitor_without_logger": (
        ["~logger"],
        "callbacks.lr_monitor (LearningRateMonitor) needs a logger, but there is none (~logger?)",
    ),
}


# checked by the constructor of what they configure (src.checks), reached by the start-up dry build
CONSTRUCTOR_CHECKED = {
    "bridge_copy_of_a_conv_encoder": (
        ["encoder=conv", "decoder.bridge=copy"],
        "decoder.bridge=copy starts the decoder from the encoder's final states",
    ),
    "unknown_output_activation": (["decoder.output_activation=relu"], "decoder.output_activation='relu'"),
    "encoder_size_zero": (
        ["encoder.hidden_size=0"],
        "encoder.hidden_size=0 is invalid: it must be an integer >= 1",
    ),
    "decoder_layers_text": (["decoder.num_layers=two"], "decoder.num_layers='two' is invalid"),
    "conv_kernel_text": (["encoder=conv", "encoder.kernel_size=x"], "encoder.kernel_size='x' is invalid"),
    "transformer_ff_zero": (["encoder=transformer", "encoder.d_ff=0"], "encoder.d_ff=0 is invalid"),
    "bahdanau_size_zero": (["attention.hidden_size=0"], "attention.hidden_size=0 is invalid"),
    "embedding_dropout_1": (["model.net.embedding_dropout=1"], "model.net.embedding_dropout=1 is invalid"),
    "negative_coverage_weight": (
        ["model.coverage_loss_weight=-1"],
        "model.coverage_loss_weight=-1 is invalid",
    ),
    "decay_steps_zero": (
        ["model.teacher_forcing.decay_steps=0"],
        "model.teacher_forcing.decay_steps=0 is invalid",
    ),
    "penalty_without_beam": (
        ["+model.val_generator.length_penalty=0.6"],
        "model.val_generator.length_penalty=0.6 is invalid: it must be 0 with model.val_generator.beam_size=1",
    ),
    "translator_batch_zero": (["model.translator.batch_size=0"], "model.translator.batch_size=0 is invalid"),
    "valid_ratio_text": (
        ["data.valid_ratio=half"],
        "data.valid_ratio must be a number in [0, 1), got 'half'",
    ),
    "data_batch_zero": (["data.batch_size=0"], "data.batch_size must be an integer >= 1, got 0"),
}


def test_rules_hold_only_options_of_constructors_we_do_not_own():
    from src.schema import RULES

    assert {option.split(".")[0] for option in RULES} <= {"model", "trainer", "seed"}
    assert all(option.startswith("model.optimizer.") for option in RULES if option.startswith("model."))


@pytest.mark.parametrize("case", {**INVALID, **CONSTRUCTOR_CHECKED})
def test_invalid_option_is_rejected_naming_it(case):
    overrides, message = {**INVALID, **CONSTRUCTOR_CHECKED}[case]
    with pytest.raises(ConfigError) as err:
        validate_train_config(compose_config(overrides=overrides))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=tatoeba_transformer"],
        ["experiment=tatoeba_rnn"],
        ["experiment=multi30k_conv"],
        ["experiment=bench_tatoeba_rnn_onmt"],
        ["encoder=gru", "decoder=gru", "decoder.bridge=copy"],
        ["encoder=conv", "attention=luong_general", "decoder=gru"],
        ["encoder=gru", "attention=none", "decoder=gru"],
        ["attention=coverage", "trainer.precision=bf16-mixed", "trainer.max_epochs=-1"],
        ["model.scheduler={_target_: torch.optim.lr_scheduler.StepLR, _partial_: true, step_size: 2}"],
        ["~logger", "~callbacks.lr_monitor"],
    ],
)
def test_valid_configs_pass(overrides, monkeypatch):
    # whether this CPU computes bf16 is tests/test_hardware.py's subject, not these options'
    monkeypatch.setattr("src.hardware.cpu_supports_bf16", lambda: True)
    validate_train_config(compose_config(overrides=overrides))


def test_misspelt_key_is_refused_by_hydra_with_the_fix():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(overrides=["model.optimzer.lr=0.1"])
    assert "Could not override 'model.optimzer.lr'" in str(err.value)
    assert "Key 'optimzer' is not in struct" in str(err.value.__cause__)


def test_wrapped_user_error_exits_2_with_its_message_only(caplog):
    @user_errors_exit
    def entry() -> None:
        try:
            raise ConfigError("data.batch_size must be an integer >= 1, got 0.")
        except ConfigError as err:  # what hydra.utils.instantiate does to a constructor's error
            raise InstantiationException("Error in call to target ...") from err

    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        entry()
    assert exit_info.value.code == 2
    assert caplog.messages == ["data.batch_size must be an integer >= 1, got 0."]


def test_instantiation_error_without_user_error_is_not_hidden():
    @user_errors_exit
    def entry() -> None:
        raise InstantiationException("Error locating target 'src.nope'")

    with pytest.raises(InstantiationException):
        entry()


def assert_clean_failure(result, message: str, returncode: int = 2) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == returncode, output[-3000:]
    assert message in output
    assert "Traceback" not in output


def test_cli_unknown_group_option_lists_the_valid_ones(tmp_path):
    result = run_entry("src.train", "attention=bahdnau", f"paths.log_dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Could not find 'attention/bahdnau'" in output
    assert "Available options in 'attention':\n\tbahdanau\n\tcoverage" in output
    assert "Traceback" not in output


def test_cli_wrong_type_fails_before_the_data_is_read(tmp_path):
    # the corpus does not exist either: the config error must come first
    result = run_entry(
        "src.train",
        "model.optimizer.lr=abc",
        f"data.train_path={tmp_path}/nope.tsv",
        f"paths.log_dir={tmp_path}",
    )
    assert_clean_failure(result, "model.optimizer.lr='abc' is invalid: it must be a number > 0.")
    assert "Reading the data" not in result.stdout + result.stderr


def test_cli_incompatible_pairing_exits_2(tmp_path):
    result = run_entry("src.train", "decoder=transformer", "attention=coverage", f"paths.log_dir={tmp_path}")
    assert_clean_failure(result, "decoder=transformer cannot use attention=coverage")


@pytest.mark.parametrize(
    ("module", "override", "group"),
    [("src.train", "logger=null", "logger"), ("src.evaluate", "hydra/launcher=null", "hydra/launcher")],
)
def test_cli_null_config_group_names_the_way_to_remove_it(tmp_path, module, override, group):
    # Hydra itself answers `group=null` with a traceback of its internals
    result = run_entry(module, override, f"paths.log_dir={tmp_path}")
    assert_clean_failure(
        result,
        f"{override}: a config group cannot be set to null. To run without it, remove it with ~{group}",
    )


def test_null_value_of_an_option_is_not_taken_for_a_null_group():
    assert (
        null_group_override(["trainer.max_time=null", "~logger", "attention=none", "-m", "seed=1,2"]) is None
    )
    assert null_group_override(["--cfg", "job", "trainer=null"]).startswith("trainer=null: a config group")


def test_float32_matmul_precision_is_applied_and_checked():
    before = torch.get_float32_matmul_precision()
    try:
        set_matmul_precision(OmegaConf.create({"float32_matmul_precision": "highest"}))
        assert torch.get_float32_matmul_precision() == "highest"
        set_matmul_precision(OmegaConf.create({"float32_matmul_precision": "medium"}))
        assert torch.get_float32_matmul_precision() == "medium"
        set_matmul_precision(compose_config())  # the training default
        assert torch.get_float32_matmul_precision() == "highest"
        with pytest.raises(ConfigError, match="float32_matmul_precision='low' is invalid: use highest, high"):
            set_matmul_precision(OmegaConf.create({"float32_matmul_precision": "low"}))
    finally:
        torch.set_float32_matmul_precision(before)


# the largest error of `medium` relative to float32, by CPU family (docs/BENCHMARK.md): oneDNN's multi-pass
# bf16 kernels on AVX512-BF16, single-pass bf16 products on AMX, no faster kernel (plain float32) elsewhere
MEDIUM_TOLERANCE = {"amx": 2e-2, "avx512_bf16": 1e-5}


def test_medium_matmul_precision_stays_within_its_documented_error():
    """What `medium` costs in accuracy on this CPU is what the docs say: within float32 rounding on AVX512-BF16
    and on CPUs without a faster kernel; within bf16 rounding on AMX."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 1000)
    x = torch.randn(64, 256)
    before = torch.get_float32_matmul_precision()
    results = []
    try:
        for precision in ("highest", "medium"):
            torch.set_float32_matmul_precision(precision)
            layer.zero_grad()
            out = layer(x)
            out.square().sum().backward()
            results.append((out.detach(), layer.weight.grad.clone()))
    finally:
        torch.set_float32_matmul_precision(before)
    tolerance = MEDIUM_TOLERANCE.get(cpu_family(), 1e-5)
    for exact, fast in zip(*results, strict=True):
        assert (fast - exact).abs().max() <= tolerance * exact.abs().max()


def test_library_warnings_that_are_not_the_users_are_silenced_in_entry_points():
    import warnings

    from src.entry import filter_library_warnings

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        filter_library_warnings()
        warnings.warn(
            "`isinstance(treespec, LeafSpec)` is deprecated, use ...", DeprecationWarning, stacklevel=1
        )
        warnings.warn(
            "The 'val_dataloader' does not have many workers which may be a bottleneck.", stacklevel=1
        )
        warnings.warn("a warning of the user's own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["a warning of the user's own"]
