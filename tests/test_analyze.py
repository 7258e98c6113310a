"""`python -m src.analyze heads`: head importance, BLEU against heads pruned, a pruned checkpoint."""

import json
from pathlib import Path

import pytest

from src.analyze import analyze, command_line
from src.checkpoint import load_model
from src.errors import ConfigError
from src.evaluate import evaluate
from src.heads import current_mask
from src.translate import translate
from tests.conftest import compose_config, run_entry

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def analyze_in_process(checkpoint: dict[str, Path], tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_config(
        "analyze",
        [
            "analysis=heads",
            f"ckpt_path={checkpoint['ckpt']}",
            f"data.test_path={checkpoint['test']}",
            f"paths.output_dir={tmp_path}",
            "heads.prune_shares=[0.0,1.0]",
            *overrides,
        ],
    )
    return analyze(cfg)


@pytest.mark.slow
def test_heads_command_writes_the_importance_the_pruning_curve_and_a_pruned_checkpoint(
    tiny_transformer_checkpoint, tmp_path
):
    result = run_entry(
        "src.analyze",
        "heads",
        f"ckpt_path={tiny_transformer_checkpoint['ckpt']}",
        f"data.test_path={tiny_transformer_checkpoint['test']}",
        "heads.prune_shares=[0.0,0.02,0.5,1.0]",
        "heads.save_pruned=0.5",
        f"paths.log_dir={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "analyze" / "runs").iterdir()
    heads = json.loads((run_dir / "heads.json").read_text())
    assert {(row["kind"], row["layer"], row["head"]) for row in heads["heads"]} == {
        (kind, layer, head) for kind in ("encoder", "decoder", "cross") for layer in (0, 1) for head in (0, 1)
    }
    assert sorted(row["rank"] for row in heads["heads"]) == list(range(12))
    assert [(row["share"], row["heads_pruned"], row["share_pruned"]) for row in heads["pruning"]] == [
        (0.0, 0, 0.0),
        (0.02, 0, 0.0),  # round(0.02 * 12) = 0 heads: the unpruned model's BLEU, measured once
        (0.5, 6, 0.5),
        (1.0, 12, 1.0),
    ]
    assert heads["pruning"][1]["bleu"] == heads["pruning"][0]["bleu"]
    assert heads["sentences"] == 100
    for png in ("head_importance.png", "pruning.png"):
        assert (run_dir / png).read_bytes().startswith(PNG_MAGIC)
    assert Path(heads["pruned_checkpoint"]["path"]) == run_dir / "pruned.ckpt"
    assert "Head importance (mean |dL/dg| over 100 sentences" in result.stdout
    assert "| encoder | 0 |" in result.stdout


def test_a_pruned_checkpoint_runs_pruned_in_every_command(tiny_transformer_checkpoint, tmp_path):
    heads = analyze_in_process(tiny_transformer_checkpoint, tmp_path / "analyze", "heads.save_pruned=0.5")
    pruned = Path(heads["pruned_checkpoint"]["path"])
    mask = current_mask(load_model(pruned).net)
    zeros = {
        (kind, layer, head)
        for kind, layers in mask.items()
        for layer, gates in enumerate(layers)
        for head, gate in enumerate(gates)
        if gate == 0.0
    }
    assert zeros == {tuple(head) for head in heads["pruning_order"][:6]}

    evaluate(compose_config("evaluate", [f"ckpt_path={pruned}", f"paths.output_dir={tmp_path / 'evaluate'}"]))
    assert "bleu" in json.loads((tmp_path / "evaluate" / "scores.json").read_text())
    (tmp_path / "input.txt").write_text("1 2 3\n4 5 6 7\n", encoding="utf-8")
    translate(
        compose_config(
            "translate",
            [
                f"ckpt_path={pruned}",
                f"input={tmp_path / 'input.txt'}",
                f"output={tmp_path / 'output.txt'}",
                f"paths.output_dir={tmp_path / 'translate'}",
            ],
        )
    )
    assert len((tmp_path / "output.txt").read_text(encoding="utf-8").splitlines()) == 2


def test_bleu_at_a_share_is_what_evaluate_measures_on_the_pruned_checkpoint(
    tiny_transformer_checkpoint, tmp_path
):
    heads = analyze_in_process(
        tiny_transformer_checkpoint, tmp_path / "analyze", "heads.prune_shares=[0.5]", "heads.save_pruned=0.5"
    )
    bleu = evaluate(
        compose_config(
            "evaluate",
            [
                f"ckpt_path={heads['pruned_checkpoint']['path']}",
                f"data.test_path={tiny_transformer_checkpoint['test']}",
                f"paths.output_dir={tmp_path / 'evaluate'}",
            ],
        )
    )
    assert bleu == pytest.approx(heads["pruning"][0]["bleu"])


def test_the_first_word_names_the_analysis():
    assert command_line(["analyze.py", "heads", "ckpt_path=x"]) == [
        "analyze.py",
        "analysis=heads",
        "ckpt_path=x",
    ]
    assert command_line(["analyze.py", "analysis=heads"]) == ["analyze.py", "analysis=heads"]
    assert command_line(["analyze.py", "--help"]) == ["analyze.py", "--help"]


def test_an_unknown_analysis_is_a_config_error(tiny_transformer_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="analysis=hedas is unknown: use heads"):
        analyze_in_process(tiny_transformer_checkpoint, tmp_path, "analysis=hedas")


def test_a_model_without_multihead_attention_is_a_config_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="no multi-head attention whose heads could be scored"):
        analyze_in_process(tiny_checkpoint, tmp_path)


def test_a_share_outside_0_1_is_a_config_error(tiny_transformer_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="1.5 is not between 0 and 1"):
        analyze_in_process(tiny_transformer_checkpoint, tmp_path, "heads.save_pruned=1.5")
