"""Word alignments from a checkpoint: `python -m src.align ckpt_path=... input=<pairs> [gold=<links>]`.

Reads like a table of contents: check the options, read the pairs (and the gold links), force-decode the
pairs through the model (and through a reverse model, then symmetrise), write one line of Pharaoh links per
pair; with gold, score the alignment, every direction and every layer and head, and write the scores (see
conf/align.yaml; the methods: src/alignment.py and docs/ALIGNMENT.md). With `aligner=eflomal` the statistical
aligner writes the links instead, without a checkpoint (e.g. the training pairs' links for guided alignment).
"""

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from omegaconf import DictConfig, OmegaConf

from src.aligner import Aligner
from src.alignment import (
    METHODS,
    PAIR_FORMATS,
    SYMMETRIZATIONS,
    GoldLinks,
    LayerHeadScores,
    Link,
    Pair,
    TokenAttention,
    align,
    alignment_scores,
    check_gold,
    format_layer_head_table,
    format_pharaoh,
    read_gold,
    read_pairs,
    scores_by_layer_head,
    symmetrize,
    transpose,
)
from src.checkpoint import (
    check_inference_options,
    load_model,
    read_checkpoint,
    resolve_device,
    trained_reverse,
)
from src.config import register_resolvers
from src.data.tsv import read_parallel_tsv
from src.entry import entry_point
from src.errors import ConfigError
from src.plotting import score_grid_figure
from src.statistical_aligner import eflomal_links

log = logging.getLogger("seq2seq-lab")
# what writes the links: the checkpoint's attention, or the statistical aligner alone (no checkpoint)
ALIGNERS = ("model", "eflomal")
register_resolvers()


def align_pairs(cfg: DictConfig) -> float | None:
    """Write the links of every pair to `cfg.output`; with gold, return the AER of those links."""
    _check_options(cfg)
    pairs = read_pairs(cfg.input, cfg.input_format, option="input")
    gold = _read_gold(cfg, pairs)
    device = resolve_device(cfg.device)  # checked, and the matmul precision applied, by _check_options

    if cfg.aligner == "eflomal":  # the statistical aligner writes the links: no model, no attention
        forward, directions = [], {"eflomal": eflomal_links(pairs, _baseline_corpus(cfg), cfg.symmetrize)}
        written = "eflomal"
    else:
        forward, directions = _align_directions(cfg, pairs, device)
        if cfg.baseline == "eflomal":  # scored and reported beside the model's directions, never written
            directions["eflomal"] = eflomal_links(pairs, _baseline_corpus(cfg), cfg.symmetrize)
        written = cfg.symmetrize if cfg.reverse_ckpt_path else "forward"
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        "".join(format_pharaoh(links) + "\n" for links in directions[written]), encoding="utf-8"
    )

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    result = _describe_run(cfg, written, len(pairs), output)
    grid = None
    if gold is not None:
        scores = {name: alignment_scores(links, gold) for name, links in directions.items()}
        result.update(dataclasses.asdict(scores[written]))
        result["directions"] = {name: dataclasses.asdict(s) for name, s in scores.items()}
        num_layers, num_heads = forward[0].weights.shape[:2] if forward else (1, 1)
        if num_layers * num_heads > 1:
            grid = scores_by_layer_head(forward, gold, cfg.method, cfg.threshold)
            result.update(_layer_head_result(grid, output_dir / "aer_by_layer_head.png", cfg))
    scores_path = output_dir / "scores.json"
    scores_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summarize(result, grid, scores_path)
    return result.get("aer")


def _align_directions(
    cfg: DictConfig, pairs: list[Pair], device: torch.device
) -> tuple[list[TokenAttention], dict[str, list[set[Link]]]]:
    """The forward model's attention, and the links of every direction: `forward`; with a reverse model
    also `reverse` (as source-target links) and each symmetrisation of the two."""
    choice = {"method": cfg.method, "threshold": cfg.threshold, "layer": cfg.layer, "head": cfg.head}
    forward = _aligner(cfg, "ckpt_path", device, pairs[0]).attention(pairs)
    directions = {"forward": [align(attention, **choice) for attention in forward]}
    if cfg.reverse_ckpt_path:
        reverse_pairs = [(tgt, src) for src, tgt in pairs]
        reverse = _aligner(cfg, "reverse_ckpt_path", device, reverse_pairs[0]).attention(reverse_pairs)
        directions["reverse"] = [transpose(align(attention, **choice)) for attention in reverse]
        for how in SYMMETRIZATIONS:
            directions[how] = [
                symmetrize(f, r, how)
                for f, r in zip(directions["forward"], directions["reverse"], strict=True)
            ]
    return forward, directions


def _baseline_corpus(cfg: DictConfig) -> list[tuple[str, str]]:
    """The corpus the statistical aligner is trained on besides the pairs: baseline_corpus, or the
    training file of the model (from its checkpoint; none with aligner=eflomal and no checkpoint), at most
    baseline_max_pairs of its lines."""
    path = cfg.baseline_corpus
    if not path and cfg.ckpt_path:
        path = read_checkpoint(cfg.ckpt_path)["seq2seq_lab"]["config"]["data"].get("train_path")
    if not path:
        return []
    pairs = read_parallel_tsv(path, option="baseline_corpus").pairs
    return pairs[: cfg.baseline_max_pairs] if cfg.baseline_max_pairs else pairs


def _describe_run(cfg: DictConfig, written: str, num_pairs: int, output: Path) -> dict[str, Any]:
    """What scores.json says about the run besides its scores."""
    return {
        "alignment": written,
        "method": cfg.method,
        "threshold": cfg.threshold,
        "layer": cfg.layer,
        "head": cfg.head,
        "pairs": num_pairs,
        "aligner": cfg.aligner,
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()) if cfg.ckpt_path else None,
        "reverse_ckpt_path": str(Path(cfg.reverse_ckpt_path).resolve()) if cfg.reverse_ckpt_path else None,
        "input": str(Path(cfg.input).resolve()),
        "gold": str(Path(cfg.gold).resolve()) if cfg.gold else None,
        "output": str(output.resolve()),
    }


def _check_options(cfg: DictConfig) -> None:
    if cfg.aligner not in ALIGNERS:
        raise ConfigError(f"aligner={cfg.aligner} is unknown: use {', '.join(ALIGNERS)} (docs/ALIGNMENT.md).")
    required = ("ckpt_path", "input") if cfg.aligner == "model" else ("input",)
    for option in required:
        if OmegaConf.is_missing(cfg, option) or not cfg[option]:
            raise ConfigError(
                f"{option} is missing: python -m src.align ckpt_path=<checkpoint> input=<file of "
                "'source<TAB>target' or 'source ||| target' lines> [gold=<gold links>] "
                "(or aligner=eflomal input=<file>, without a checkpoint)"
            )
    if cfg.aligner == "eflomal":
        for option in ("reverse_ckpt_path", "baseline"):
            if cfg[option]:
                raise ConfigError(
                    f"{option}={cfg[option]} does not go with aligner=eflomal, which aligns without a model: "
                    f"drop {option}, or set aligner=model with a ckpt_path."
                )
    if cfg.method not in METHODS:
        raise ConfigError(f"method={cfg.method} is unknown: use {', '.join(METHODS)} (docs/ALIGNMENT.md).")
    if cfg.method == "threshold" and not (
        isinstance(cfg.threshold, int | float)
        and not isinstance(cfg.threshold, bool)
        and 0 < cfg.threshold <= 1
    ):
        raise ConfigError(f"threshold={cfg.threshold} is out of range: it must be a number in (0, 1].")
    for option in ("layer", "head"):
        value = cfg[option]
        if value != "mean" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{option}={value} is invalid: give an index (0-based, -1 = the last) or mean.")
    if cfg.input_format not in PAIR_FORMATS:
        raise ConfigError(f"input_format={cfg.input_format} is unknown: use {', '.join(PAIR_FORMATS)}.")
    if cfg.gold_index_base not in (0, 1) or isinstance(cfg.gold_index_base, bool):
        raise ConfigError(f"gold_index_base={cfg.gold_index_base} is invalid: use 1 (1-based links) or 0.")
    if cfg.baseline not in (None, "eflomal"):
        raise ConfigError(f"baseline={cfg.baseline} is unknown: use eflomal or null.")
    if cfg.symmetrize not in SYMMETRIZATIONS:
        raise ConfigError(f"symmetrize={cfg.symmetrize} is unknown: use {', '.join(SYMMETRIZATIONS)}.")
    check_inference_options(cfg)


def _read_gold(cfg: DictConfig, pairs: list[Pair]) -> list[GoldLinks] | None:
    if not cfg.gold:
        return None
    gold = read_gold(cfg.gold, cfg.gold_index_base, option="gold")
    check_gold(gold, pairs, cfg.gold, cfg.input, cfg.gold_index_base)
    return gold


def _aligner(cfg: DictConfig, option: str, device: torch.device, first_pair: Pair) -> Aligner:
    """The model `cfg[option]` names, checked to have attention and the chosen layer and head."""
    loaded = load_model(cfg[option], device)
    if loaded.net.num_heads == 0:
        raise ConfigError(
            f"{option}={cfg[option]}: this model has no attention to read alignments from: it was trained "
            "with attention=none. Align with a model trained with an attention (e.g. attention=bahdanau)."
        )
    if option == "ckpt_path" and trained_reverse(loaded.config):
        log.warning(
            "ckpt_path=%s was trained with data.reverse=true: it translates its training files' second column "
            "into the first. src.align reads input as this model's (source, target) pairs, so give the input "
            "with its sides in that order, or use this model as reverse_ckpt_path beside a forward model.",
            cfg[option],
        )
    aligner = Aligner(loaded.net, loaded.codec, cfg.batch_size)
    num_layers, num_heads = aligner.attention([first_pair])[0].weights.shape[:2]
    for name, value, count in (("layer", cfg.layer, num_layers), ("head", cfg.head, num_heads)):
        if value != "mean" and not -count <= value < count:
            raise ConfigError(
                f"{name}={value} is out of range: the model of {option} has {count} attention {name}s "
                f"(0..{count - 1}, or negative from the last, or mean)."
            )
    return aligner


def _layer_head_result(grid: LayerHeadScores, png: Path, cfg: DictConfig) -> dict[str, Any]:
    """The scores of every layer and head for scores.json, and their heatmap saved as `png`."""
    figure = score_grid_figure(
        grid.aer_grid(),
        [str(layer) for layer in grid.layers],
        [str(head) for head in grid.heads],
        title=f"AER by layer and head ({cfg.method})",
        label="AER (%)",
        xlabel="head",
        ylabel="decoder layer",
    )
    figure.savefig(png, dpi=120)
    plt.close(figure)
    best_layer, best_head = grid.best()
    return {
        "by_layer_head": [
            {"layer": layer, "head": head, **dataclasses.asdict(scores)}
            for (layer, head), scores in grid.scores.items()
        ],
        "best_layer_head": {
            "layer": best_layer,
            "head": best_head,
            "aer": grid.scores[best_layer, best_head].aer,
        },
        "by_layer_head_png": str(png.resolve()),
    }


def summarize(result: dict[str, Any], grid: LayerHeadScores | None, scores_path: Path) -> None:
    how = result["method"] + (f" {result['threshold']}" if result["method"] == "threshold" else "")
    lines = [
        f"Aligned {result['pairs']} pairs ({how}, layer {result['layer']}, head {result['head']}, "
        f"{result['alignment']}): {result['output']}"
        if result["aligner"] == "model"
        else f"Aligned {result['pairs']} pairs with eflomal ({result['alignment']}): {result['output']}"
    ]
    for name, scores in result.get("directions", {}).items():
        lines.append(
            f"{name:>15}: AER = {scores['aer']:.1f}  precision = {scores['precision']:.1f}  "
            f"recall = {scores['recall']:.1f}  ({scores['links']} links; gold {scores['sure']} sure, "
            f"{scores['possible']} possible)"
        )
    if grid is not None:
        best = result["best_layer_head"]
        lines.append(
            f"AER (%) of the forward model by decoder layer and head ({result['by_layer_head_png']}):"
        )
        lines += format_layer_head_table(grid).splitlines()
        lines.append(f"Best: layer={best['layer']} head={best['head']}: AER = {best['aer']:.1f}")
    lines.append(f"Scores: {scores_path}")
    log.info("Done.\n  %s", "\n  ".join(lines))


@entry_point("align")
def main(cfg: DictConfig) -> float | None:
    return align_pairs(cfg)


if __name__ == "__main__":
    main()
