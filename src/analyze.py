"""Inside the attention: `python -m src.analyze heads|attribution ckpt_path=... [data.test_path=...]`.

The first word of the command line names the analysis (`heads` is `analysis=heads`). Each reads like a
table of contents (options: conf/analyze.yaml; methods: docs/INSIDE_ATTENTION.md):

* `heads`: load the model and the test set, measure the importance of every attention head, write the table
  and the layer x head heatmap, prune the least important heads share by share and measure BLEU at each, and
  save the pruned model as a checkpoint (src/heads.py).
* `attribution`: translate the first test sentences, then for every output token compare the attention with
  gradient attributions over the source tokens (rank correlation, top-token agreement, erasure), and write
  the table, one sentence's maps side by side, and every sentence's values (src/attribution.py).
"""

import copy
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from sacrebleu.metrics import BLEU

from src.attribution import (
    AGGREGATES,
    METHOD_NAMES,
    METHODS,
    SentenceAttribution,
    attribute_sentence,
    compare_tokens,
    format_summary_table,
    require_captum,
    summarize,
)
from src.checkpoint import AtomicCheckpointIO, load_translator, read_checkpoint, read_test_pairs
from src.checks import is_int
from src.config import register_resolvers
from src.data.vocab import EOS, UNK_ID
from src.entry import entry_point
from src.errors import ConfigError, DataError
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
from src.plotting import pruning_figure, save_figure, score_grid_figure, side_by_side_figure
from src.translator import Translator, bleu_hypothesis, bleu_reference

log = logging.getLogger("seq2seq-lab")
register_resolvers()

ANALYSES = ("heads", "attribution")


def analyze(cfg: DictConfig) -> dict[str, Any]:
    if cfg.analysis not in ANALYSES:
        raise ConfigError(
            f"analysis={cfg.analysis} is unknown: use {', '.join(ANALYSES)}, e.g. "
            "python -m src.analyze heads ckpt_path=<checkpoint>"
        )
    if cfg.analysis == "attribution":
        return analyze_attribution(cfg)
    return analyze_heads(cfg)


def analyze_heads(cfg: DictConfig) -> dict[str, Any]:
    """Write the importance of every head, BLEU against the share of heads pruned and, with
    `heads.save_pruned`, the pruned checkpoint; returns what heads.json holds."""
    options = _check_heads_options(cfg)
    translator, train_config = load_translator(cfg)
    net = translator.net
    check_has_heads(net)
    test_path, pairs = read_test_pairs(cfg.data.test_path, train_config)
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
    # each requested share prunes round(share * heads) heads; shares that round to the same count (a model
    # of few heads) are one measurement, and the curve's x is the share actually pruned
    curve, bleu_by_count = [], {}
    for share in options["prune_shares"]:
        pruned = heads_to_prune(ranking, share)
        if len(pruned) not in bleu_by_count:
            net.set_head_mask(head_mask(net, pruned, base))
            bleu_by_count[len(pruned)] = _bleu(translator, pairs, bleu_tokenize)
        curve.append(
            {
                "share": share,
                "heads_pruned": len(pruned),
                "share_pruned": len(pruned) / len(ranking),
                "bleu": bleu_by_count[len(pruned)],
            }
        )
        log.info("%3.0f%% of the heads pruned (%d): BLEU = %.2f", 100 * share, len(pruned), curve[-1]["bleu"])
    if curve:
        figure = pruning_figure(
            [count / len(ranking) for count in sorted(bleu_by_count)],
            [bleu_by_count[count] for count in sorted(bleu_by_count)],
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


def analyze_attribution(cfg: DictConfig) -> dict[str, Any]:
    """Compare attention with gradient attribution on the model's own translations of the first
    `attribution.max_sentences` test sentences; writes attribution.json, attribution.md, attribution.png and
    attribution_sentences.jsonl, and returns what attribution.json holds."""
    options = _check_attribution_options(cfg)
    require_captum()
    translator, train_config = load_translator(cfg)
    codec, net = translator.codec, translator.net
    test_path, pairs = read_test_pairs(cfg.data.test_path, train_config)
    sources = [source for source, _ in pairs]
    sources = [source for source in sources[: options["max_sentences"]] if translator.encode(source)]
    if not sources:
        raise DataError(f"{test_path} has no source sentence with a token to attribute (data.test_path).")
    has_attention = net.num_heads > 0
    if not has_attention:
        log.warning(
            "This model has no attention (attention=none): only the attributions and their erasure check are "
            "computed; the comparisons with attention are skipped."
        )
    log.info("Translating %d sentences of %s, then attributing every output token", len(sources), test_path)
    sentences = []
    for source, nbest in zip(sources, translator.translate(sources), strict=True):
        sentences.append(
            attribute_sentence(
                net,
                translator.encode(source),
                nbest[0].tokens,
                UNK_ID,
                options["methods"],
                options["ig_steps"],
                options["aggregate"],
                cfg.batch_size,
            )
        )
    summaries = {
        method: summarize(
            [
                row
                for sentence in sentences
                for row in compare_tokens(sentence.attention, sentence.scores[method], sentence.drops)
            ]
        )
        for method in options["methods"]
    }
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    example = min(options["example"], len(sentences) - 1)
    save_figure(
        _attribution_figure(codec, sources[example], sentences[example]), output_dir / "attribution.png"
    )
    deltas = [sentence.ig_delta.abs() for sentence in sentences if sentence.ig_delta is not None]
    result: dict[str, Any] = {
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "test_path": str(Path(test_path).resolve()),
        "sentences": len(sentences),
        "output_tokens": sum(len(sentence.output) for sentence in sentences),
        "attention": has_attention,
        "aggregate": options["aggregate"],
        "ig_steps": options["ig_steps"],
        "ig_convergence_delta": float(torch.cat(deltas).mean()) if deltas else None,
        "methods": summaries,
        "example": example,
    }
    table = format_summary_table(summaries)
    (output_dir / "attribution.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (output_dir / "attribution.md").write_text(table + "\n", encoding="utf-8")
    with (output_dir / "attribution_sentences.jsonl").open("w", encoding="utf-8") as file:
        for source, sentence in zip(sources, sentences, strict=True):
            file.write(json.dumps(_sentence_record(codec, source, sentence)) + "\n")
    lines = [
        f"Attention against attribution over {result['output_tokens']} output tokens of {len(sentences)} "
        f"sentences ({output_dir / 'attribution.png'}):",
        *table.splitlines(),
    ]
    if not has_attention:
        lines.append("No attention: the attention columns are empty.")
    if result["ig_convergence_delta"] is not None:
        lines.append(
            f"Integrated gradients, mean |convergence delta| with {options['ig_steps']} steps: "
            f"{result['ig_convergence_delta']:.2e}"
        )
    lines.append(f"Results: {output_dir / 'attribution.json'}")
    log.info("Done.\n  %s", "\n  ".join(lines))
    return result


def _attribution_figure(codec, source: str, sentence: SentenceAttribution):
    """The attention and each attribution of one sentence side by side; each attribution's magnitude is
    divided by its row's maximum, so that every row's top token is 1 as the attention's scale allows."""
    panels = []
    if sentence.attention is not None:
        panels.append(("attention (mean over heads)", sentence.attention))
    for method, scores in sentence.scores.items():
        magnitude = scores.abs()
        scaled = magnitude / magnitude.amax(dim=1, keepdim=True).clamp(min=torch.finfo(magnitude.dtype).tiny)
        panels.append((f"|{METHOD_NAMES[method]}| / row max", scaled))
    return side_by_side_figure(
        panels,
        codec.src_vocab.lookup(sentence.src),
        codec.tgt_vocab.lookup(sentence.output[:-1]) + [EOS],
        title=f"Attention against attribution: {source[:80]}",
    )


def _sentence_record(codec, source: str, sentence: SentenceAttribution) -> dict[str, Any]:
    """One line of attribution_sentences.jsonl: the tokens and every `[T, S]` matrix as nested lists."""
    return {
        "source": source,
        "src_tokens": codec.src_vocab.lookup(sentence.src),
        "output_tokens": codec.tgt_vocab.lookup(sentence.output[:-1]) + [EOS],
        "log_probs": sentence.log_probs.tolist(),
        "attention": None if sentence.attention is None else sentence.attention.tolist(),
        "attribution": {method: scores.tolist() for method, scores in sentence.scores.items()},
        "erasure_drops": sentence.drops.tolist(),
        "ig_convergence_delta": None if sentence.ig_delta is None else sentence.ig_delta.tolist(),
    }


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


def _check_attribution_options(cfg: DictConfig) -> dict[str, Any]:
    """The `attribution` options, checked; gradients need float weights, so not int8."""
    options = OmegaConf.to_container(cfg.attribution, resolve=True)
    for key in ("max_sentences", "ig_steps"):
        value = options[key]
        if not is_int(value, 1):
            raise ConfigError(f"attribution.{key}={value} must be an integer >= 1.")
    example = options["example"]
    if not is_int(example, 0):
        raise ConfigError(f"attribution.example={example} must be an integer >= 0 (a sentence index).")
    methods = options["methods"]
    if not methods or any(method not in METHODS for method in methods):
        raise ConfigError(f"attribution.methods={methods}: choose one or more of {', '.join(METHODS)}.")
    if options["aggregate"] not in AGGREGATES:
        raise ConfigError(f"attribution.aggregate={options['aggregate']}: use {' or '.join(AGGREGATES)}.")
    if cfg.get("int8"):
        raise ConfigError(
            "int8=true: attribution takes gradients, which int8 layers do not have; use int8=false."
        )
    return options


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


@entry_point("analyze")
def main(cfg: DictConfig) -> None:
    analyze(cfg)


if __name__ == "__main__":
    sys.argv = command_line(sys.argv)
    main()
