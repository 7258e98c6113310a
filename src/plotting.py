"""Figures: attention heatmaps (matplotlib for TensorBoard and PNG files, text for the terminal), a heatmap
of scores by layer x head (`score_grid_figure`), scores against source length (`length_figure`), BLEU
against the share of attention heads pruned (`pruning_figure`), and maps of one sentence side by side
(`side_by_side_figure`: attention beside attribution).

The attention heatmaps take the weights of one hypothesis, `[heads, tgt_len, src_len]`: rows are output
tokens, columns source tokens. With several heads the figure shows their mean first, then every head.
"""

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to files or TensorBoard images

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

SHADES = " ░▒▓█"
MAX_HEAD_COLUMNS = 4


def attention_figure(
    weights: Tensor, src_tokens: list[str], tgt_tokens: list[str], title: str = ""
) -> Figure:
    """Heatmap(s) with source tokens on x, output tokens on y and a colour bar.

    weights [heads, tgt_len, src_len]; len(tgt_tokens) == tgt_len, len(src_tokens) == src_len.
    """
    weights = weights.detach().float().cpu()
    heads, tgt_len, src_len = weights.shape
    if (tgt_len, src_len) != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"weights {tuple(weights.shape)} do not fit {len(tgt_tokens)} x {len(src_tokens)} tokens"
        )
    panels = [("mean over heads" if heads > 1 else "", weights.mean(dim=0))]
    if heads > 1:
        panels += [(f"head {h}", weights[h]) for h in range(heads)]
    columns = min(len(panels), MAX_HEAD_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    width, height = heatmap_size(src_len, tgt_len)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (name, matrix) in zip(axes.flat, panels, strict=False):
        heatmap_panel(figure, ax, matrix, src_tokens, tgt_tokens, name)
    if title:
        figure.suptitle(title, wrap=True)
    figure.tight_layout()
    return figure


def score_grid_figure(
    values: list[list[float]],
    row_labels: list[str],
    column_labels: list[str],
    title: str = "",
    label: str = "",
    xlabel: str = "",
    ylabel: str = "",
    fmt: str = ".1f",
) -> Figure:
    """A heatmap of one score per cell (e.g. AER by decoder layer x head), each cell showing its value;
    lower values are lighter (the colour map is reversed viridis, for scores where lower is better).

    values `[rows][columns]`; len(row_labels) == rows, len(column_labels) == columns. `label` names the
    colour bar, `fmt` formats the cell values; a NaN cell (a head a row does not have) stays blank.
    """
    rows, columns = len(values), len(values[0]) if values else 0
    if (rows, columns) != (len(row_labels), len(column_labels)):
        raise ValueError(
            f"{rows} x {columns} values do not fit {len(row_labels)} x {len(column_labels)} labels"
        )
    figure, ax = plt.subplots(figsize=(max(4.0, 0.8 * columns + 2.5), max(3.0, 0.6 * rows + 1.5)))
    image = ax.imshow(values, cmap="viridis_r", aspect="auto")
    for row, row_values in enumerate(values):
        for column, value in enumerate(row_values):
            if math.isnan(value):
                continue
            light = image.norm(value) < 0.5  # viridis_r: low values are light, so they get dark text
            color = "black" if light else "white"
            ax.text(column, row, f"{value:{fmt}}", ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(columns), column_labels)
    ax.set_yticks(range(rows), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
    figure.tight_layout()
    return figure


def pruning_figure(shares: list[float], bleu: list[float], title: str = "") -> Figure:
    """BLEU (y) against the share of attention heads pruned (x, in percent), least important first."""
    figure, ax = plt.subplots(figsize=(5.5, 4.0))
    ax.plot([100 * share for share in shares], bleu, marker="o")
    ax.set_xlabel("heads pruned (%), least important first")
    ax.set_ylabel("BLEU")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, wrap=True)
    figure.tight_layout()
    return figure


def side_by_side_figure(
    panels: list[tuple[str, Tensor]], src_tokens: list[str], tgt_tokens: list[str], title: str = ""
) -> Figure:
    """Heatmaps of one sentence side by side, one per (name, matrix) panel, on one colour scale from 0 to
    1: source tokens on x, output tokens on y. Each matrix is `[tgt_len, src_len]` with values in [0, 1]
    (e.g. the attention, and an attribution scaled by its row maximum)."""
    width, height = heatmap_size(len(src_tokens), len(tgt_tokens))
    figure, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    for ax, (name, matrix) in zip(axes.flat, panels, strict=True):
        if tuple(matrix.shape) != (len(tgt_tokens), len(src_tokens)):
            raise ValueError(
                f"{name}: {tuple(matrix.shape)} does not fit {len(tgt_tokens)} x {len(src_tokens)} tokens"
            )
        heatmap_panel(figure, ax, matrix, src_tokens, tgt_tokens, name)
    if title:
        figure.suptitle(title, wrap=True)
    figure.tight_layout()
    return figure


def heatmap_size(src_len: int, tgt_len: int, cell: float = 0.35) -> tuple[float, float]:
    """Inches (width, height) of one heatmap panel of `tgt_len` rows and `src_len` columns, labels included."""
    return max(4.0, cell * src_len + 2.0), max(3.0, cell * tgt_len + 1.5)


def heatmap_panel(
    figure: Figure,
    ax: Any,
    matrix: Tensor,
    src_tokens: list[str],
    tgt_tokens: list[str],
    name: str = "",
    labels: tuple[str, str] = ("source", "output"),
) -> None:
    """One `[tgt_len, src_len]` matrix of values in [0, 1] on `ax`: source tokens on x, output tokens on y,
    a colour bar from 0 to 1."""
    image = ax.imshow(
        matrix.detach().float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto"
    )
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if name:
        ax.set_title(name, wrap=True)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def text_heatmap(weights: Tensor, src_tokens: list[str], tgt_tokens: list[str]) -> str:
    """A terminal heatmap: one row per output token, one shaded cell per source token.

    weights [heads, tgt_len, src_len] (averaged over heads) or [tgt_len, src_len].
    """
    if weights.dim() == 3:
        weights = weights.float().mean(dim=0)
    label_width = max((len(t) for t in tgt_tokens), default=0)
    lines = [" " * label_width + " " + " ".join(f"{i:>2}" for i in range(len(src_tokens)))]
    for token, row in zip(tgt_tokens, weights.tolist(), strict=True):
        cells = " ".join(2 * SHADES[min(int(w * len(SHADES)), len(SHADES) - 1)] for w in row)
        lines.append(f"{token:>{label_width}} {cells}")
    lines += [f"{i:>{label_width + 3}} = {token}" for i, token in enumerate(src_tokens)]
    return "\n".join(lines)


def length_figure(
    curves: dict[str, list[dict]],
    metric: str = "bleu",
    errors: dict[str, list[float | None]] | None = None,
    title: str = "",
) -> Figure:
    """A score against source length: one curve per model, the bucket sizes as grey bars behind them.

    `curves`: model name -> the rows of `src.metrics.scores_by_length` (the same buckets for every model);
    `errors`: optional error bars (e.g. the standard deviation over seeds), one per bucket.
    Empty buckets are left out of the curves.
    """
    first = next(iter(curves.values()))
    labels = [row["bucket"] for row in first]
    figure, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(labels) + 2.5), 4.0))
    sizes = ax.twinx()
    sizes.bar(range(len(labels)), [row["sentences"] for row in first], color="0.88", zorder=0)
    sizes.set_ylabel("sentences in the bucket")
    ax.set_zorder(sizes.get_zorder() + 1)
    ax.patch.set_visible(False)
    for name, rows in curves.items():
        points = [(i, row[metric]) for i, row in enumerate(rows) if row.get(metric) is not None]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        yerr = None
        if errors and errors.get(name):
            yerr = [errors[name][i] or 0.0 for i in xs]
        ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("source length (words)")
    ax.set_ylabel(metric.replace("_", " "))
    if len(curves) > 1:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title, wrap=True)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write a figure as a PNG (120 dpi) and free it."""
    figure.savefig(path, dpi=120)
    plt.close(figure)
