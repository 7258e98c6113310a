"""Inside the attention: `python -m src.analyze heads ckpt_path=... [data.test_path=...]`.

The first word of the command line names the analysis (`heads` is `analysis=heads`). `heads` reads like a
table of contents: load the model and the test set, measure the importance of every attention head, write
the table and the layer x head heatmap, prune the least important heads share by share and measure BLEU at
each, and save the pruned model as a checkpoint (see conf/analyze.yaml; the methods: src/heads.py and
docs/INSIDE_ATTENTION.md).
"""

import copy
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from sacrebleu.metrics import BLEU

from src.checkpoint import AtomicCheckpointIO, load_translator, read_checkpoint
from src.config import register_resolvers
from src.data.tsv import read_parallel_tsv
from src.entry import user_errors_exit
from src.errors import ConfigError
from src.heads import (
    HeadImportance,
    HeadMask,
    check_has_heads,
    current_mask,
    format_importance_table,
    head_importance,
    head_mask,
    heads_to_prune,
    reference_batches,
)
from src.metrics import corpus_scores
from src.plotting import pruning_figure, save_figure, score_grid_figure
from src.translator import Translator, bleu_hypothesis, bleu_reference

log = logging.getLogger("seq2seq-lab")
register_resolvers()

ANALYSES = ("heads",)


def analyze(cfg: DictConfig) -> dict[str, Any]:
    if cfg.analysis not in ANALYSES:
        raise ConfigError(
            f"analysis={cfg.analysis} is unknown: use {', '.join(ANALYSES)}, e.g. "
            "python -m src.analyze heads ckpt_path=<checkpoint>"
        )
    return analyze_heads(cfg)


def analyze_heads(cfg: DictConfig) -> dict[str, Any]:
    """Write the importance of every head, BLEU against the share of heads pruned and, with
    `heads.save_pruned`, the pruned checkpoint; returns what heads.json holds."""
    options = _check_heads_options(cfg)
    translator, train_config = load_translator(cfg)
    net = translator.net
    check_has_heads(net)
    test_path = cfg.data.test_path or _trained_test_path(train_config)
    pairs = read_parallel_tsv(test_path, option="data.test_path").pairs
    bleu_tokenize = cfg.bleu_tokenize or train_config.get("model", {}).get("bleu_tokenize", "13a")
    if bleu_tokenize not in BLEU.TOKENIZERS:
        raise ConfigError(f"bleu_tokenize={bleu_tokenize} is not a sacrebleu tokenizer: use 13a or none.")

    scored = pairs[: options["max_sentences"]]
    log.info("Measuring the importance of every head on %d sentences of %s", len(scored), test_path)
    batches = reference_batches(translator.codec, scored, cfg.batch_size, translator.max_src_len)
    importance = head_importance(net, batches)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_figure(_importance_figure(importance), output_dir / "head_importance.png")

    base = current_mask(net)
    ranking = _pruning_order(importance, base, options["normalize_by_layer"])
    curve = []
    for share in options["prune_shares"]:
        pruned = heads_to_prune(ranking, share)
        net.set_head_mask(head_mask(net, pruned, base))
        curve.append(
            {"share": share, "heads_pruned": len(pruned), "bleu": _bleu(translator, pairs, bleu_tokenize)}
        )
        log.info("%3.0f%% of the heads pruned (%d): BLEU = %.2f", 100 * share, len(pruned), curve[-1]["bleu"])
    if curve:
        figure = pruning_figure(
            [row["share"] for row in curve],
            [row["bleu"] for row in curve],
            title=f"BLEU with the least important heads pruned, {Path(test_path).name}",
        )
        save_figure(figure, output_dir / "pruning.png")

    result: dict[str, Any] = {
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "test_path": str(Path(test_path).resolve()),
        "sentences": importance.sentences,
        "normalize_by_layer": options["normalize_by_layer"],
        "bleu_tokenize": bleu_tokenize,
        "heads": importance.table(options["normalize_by_layer"]),
        "pruning_order": [list(head) for head in ranking],
        "pruning": curve,
        "pruned_checkpoint": None,
    }
    if options["save_pruned"] is not None:
        mask = head_mask(net, heads_to_prune(ranking, options["save_pruned"]), base)
        path = Path(cfg.heads.pruned_path)
        save_pruned_checkpoint(cfg.ckpt_path, mask, path)
        result["pruned_checkpoint"] = {"path": str(path.resolve()), "share": options["save_pruned"]}
    (output_dir / "heads.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _summarize(result, importance, output_dir)
    return result


def save_pruned_checkpoint(ckpt_path: str | Path, mask: HeadMask, path: Path) -> None:
    """The checkpoint `ckpt_path` with `mask` as its model's `head_mask`: the same weights, and every
    command that builds the model from the checkpoint (evaluate, translate, visualize, align, analyze)
    runs it pruned."""
    checkpoint = read_checkpoint(ckpt_path)
    checkpoint["seq2seq_lab"] = copy.deepcopy(checkpoint["seq2seq_lab"])
    checkpoint["seq2seq_lab"]["config"]["model"]["net"]["head_mask"] = mask
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)


def _pruning_order(
    importance: HeadImportance, base: HeadMask, normalize_by_layer: bool
) -> list[tuple[str, int, int]]:
    """Heads in the order they are pruned: those the model already prunes, then the least important."""
    already = [
        (kind, layer, head)
        for kind, layers in base.items()
        for layer, gates in enumerate(layers)
        for head, gate in enumerate(gates)
        if gate == 0.0
    ]
    return already + [head for head in importance.ranking(normalize_by_layer) if head not in already]


def _bleu(translator: Translator, pairs: list[tuple[str, str]], bleu_tokenize: str) -> float:
    """Corpus BLEU of the model's translations of the pairs' sources, scored as `src.evaluate` scores."""
    sources, references = zip(*pairs, strict=True)
    codec = translator.codec
    hypotheses = [
        bleu_hypothesis(codec, nbest[0].tokens, bleu_tokenize) for nbest in translator.translate(sources)
    ]
    bleu_references = [bleu_reference(codec, reference, bleu_tokenize) for reference in references]
    return corpus_scores(
        hypotheses, bleu_references, bleu_tokenize, lowercase=codec.tgt_tokenizer.lowercase
    ).bleu


def _importance_figure(importance: HeadImportance):
    """The layer x head heatmap of the importances, one row per attention kind and layer."""
    num_heads = max(grid.size(1) for grid in importance.scores.values())
    rows, labels = [], []
    for kind, grid in importance.scores.items():
        for layer, values in enumerate(grid.tolist()):
            rows.append(values + [math.nan] * (num_heads - len(values)))
            labels.append(f"{kind} {layer}")
    return score_grid_figure(
        rows,
        labels,
        [str(head) for head in range(num_heads)],
        title=f"Head importance\nmean |dL/dg| over {importance.sentences} sentences",
        label="importance",
        xlabel="head",
        ylabel="attention, layer",
        fmt=".3f",
    )


def _check_heads_options(cfg: DictConfig) -> dict[str, Any]:
    """The `heads` options, checked."""
    options = OmegaConf.to_container(cfg.heads, resolve=True)
    max_sentences = options["max_sentences"]
    if max_sentences is not None and not (isinstance(max_sentences, int) and max_sentences >= 1):
        raise ConfigError(f"heads.max_sentences={max_sentences} must be an integer >= 1, or null for all.")
    for share in [*options["prune_shares"], options["save_pruned"]]:
        if share is not None and not (
            isinstance(share, int | float) and not isinstance(share, bool) and 0 <= share <= 1
        ):
            raise ConfigError(
                f"heads.prune_shares and heads.save_pruned are shares of the heads: {share} is not between "
                "0 and 1 (e.g. heads.save_pruned=0.3 prunes 30% of the heads)."
            )
    return options


def _trained_test_path(train_config: dict[str, Any]) -> str:
    test_path = train_config.get("data", {}).get("test_path")
    if not test_path:
        raise ConfigError(
            "data.test_path is missing and the checkpoint's training run had no test file: "
            "name a source<TAB>reference file, e.g. data.test_path=data/sample/test.tsv"
        )
    return test_path


def _summarize(result: dict[str, Any], importance: HeadImportance, output_dir: Path) -> None:
    lines = [
        f"Head importance (mean |dL/dg| over {result['sentences']} sentences; {output_dir / 'head_importance.png'}):",
        *format_importance_table(importance).splitlines(),
    ]
    least = ", ".join(f"{kind} {layer}.{head}" for kind, layer, head in result["pruning_order"][:5])
    lines.append(f"Least important first: {least}, ...")
    if result["pruning"]:
        lines.append(f"BLEU by share of heads pruned ({output_dir / 'pruning.png'}):")
        lines += [f"  {100 * row['share']:3.0f}%  {row['bleu']:6.2f}" for row in result["pruning"]]
    if result["pruned_checkpoint"]:
        pruned = result["pruned_checkpoint"]
        lines.append(f"Pruned checkpoint ({100 * pruned['share']:.0f}% of the heads): {pruned['path']}")
    lines.append(f"Results: {output_dir / 'heads.json'}")
    log.info("Done.\n  %s", "\n  ".join(lines))


def command_line(argv: list[str]) -> list[str]:
    """`python -m src.analyze heads key=value ...` as Hydra reads it: a first word without `=` (and not
    an option like `--help`) is the analysis, `analysis=<word>`."""
    if len(argv) > 1 and "=" not in argv[1] and not argv[1].startswith("-"):
        return [argv[0], f"analysis={argv[1]}", *argv[2:]]
    return argv


@hydra.main(version_base="1.3", config_path="../conf", config_name="analyze")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    analyze(cfg)


if __name__ == "__main__":
    sys.argv = command_line(sys.argv)
    main()
