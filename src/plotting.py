"""Attention heatmaps: a matplotlib figure (TensorBoard, PNG files) and a text version (terminal).

Both take the weights of one hypothesis, `[heads, tgt_len, src_len]`: rows are output tokens, columns
source tokens. With several heads the figure shows their mean first, then every head.
"""

import math

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
    cell = 0.35
    width = max(4.0, cell * src_len + 2.0) * columns
    height = max(3.0, cell * tgt_len + 1.5) * rows
    figure, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (name, matrix) in zip(axes.flat, panels, strict=False):
        image = ax.imshow(matrix.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(src_len), src_tokens, rotation=90)
        ax.set_yticks(range(tgt_len), tgt_tokens)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        if name:
            ax.set_title(name)
        figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        figure.suptitle(title, wrap=True)
    figure.tight_layout()
    return figure


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
