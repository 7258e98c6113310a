"""Head importance and pruning: which attention heads does a trained model need?

Every multi-head attention of a model (the "encoder" and "decoder" self-attention of Transformers, the
"cross"-attention when it is `attention=multihead`) has a gate per head, g_h = 1 (`HeadGate`):

    MultiHead(x) = W^O [g_1 head_1; ...; g_H head_H]

* Importance (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?", section 4.1): the
  expected absolute derivative of the loss with respect to the gate, over sentences x of a data set,

      I_h = E_x | d L(x) / d g_h |        at g = 1 (or at the current mask of a pruned model)

  L(x) is the cross-entropy of the reference under teacher forcing, averaged over the sentence's tokens.
  Each sentence gets its own copy of the gates, so one backward pass per batch gives every sentence's
  derivative, and the absolute value is taken per sentence (not of the batch's summed gradient). To first
  order, I_h is how much the loss changes when head h is removed (g_h: 1 -> 0), and a head whose output
  is zero everywhere has I_h = 0 exactly.
* Ranking across layers: Michel et al. divide the importance of each layer's heads by their L2 norm
  before comparing heads of different layers (`normalize_by_layer`).
* Pruning: set g_h = 0 for the least important heads first and measure BLEU at each share of heads
  pruned (Voita et al. 2019, "Analyzing Multi-Head Self-Attention", found most heads can go at little
  cost). The mask is the model's `head_mask` (plain data in its config), so a pruned checkpoint is the
  same weights plus a mask.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from src.data.batch import Batch, collate
from src.data.codec import Codec
from src.errors import ConfigError
from src.models.seq2seq import Seq2Seq

Head = tuple[str, int, int]  # (kind, layer, head), 0-based
HeadMask = dict[str, list[list[float]]]  # kind -> per layer, one gate per head (see Seq2Seq)


def check_has_heads(net: Seq2Seq) -> None:
    """A `ConfigError` unless the model has at least one gated multi-head attention."""
    if not net.head_gates():
        raise ConfigError(
            "This model has no multi-head attention whose heads could be scored: its encoder and decoder "
            "are not Transformers and its attention is not attention=multihead. Use a model trained with "
            "encoder=transformer, decoder=transformer or attention=multihead."
        )


@dataclass
class HeadImportance:
    """Importance per kind of attention: `[layers, heads]` float tensors; `sentences` counted."""

    scores: dict[str, Tensor]
    sentences: int

    def normalized(self) -> dict[str, Tensor]:
        """Each layer's importances divided by their L2 norm (Michel et al. 2019); a layer of zeros stays 0."""
        return {
            kind: scores / scores.norm(dim=1, keepdim=True).clamp(min=torch.finfo(scores.dtype).tiny)
            for kind, scores in self.scores.items()
        }

    def ranking(self, normalize_by_layer: bool = True) -> list[Head]:
        """Every head, least important first (ties: in kind, layer, head order)."""
        scores = self.normalized() if normalize_by_layer else self.scores
        heads = [
            (float(value), (kind, layer, head))
            for kind, grid in scores.items()
            for layer, row in enumerate(grid.tolist())
            for head, value in enumerate(row)
        ]
        return [head for _, head in sorted(heads, key=lambda item: item[0])]

    def table(self, normalize_by_layer: bool = True) -> list[dict]:
        """One row per head: kind, layer, head, importance, normalized importance, rank (0 = the least
        important, as `ranking` orders them)."""
        normalized = self.normalized()
        rank = {head: position for position, head in enumerate(self.ranking(normalize_by_layer))}
        return [
            {
                "kind": kind,
                "layer": layer,
                "head": head,
                "importance": float(grid[layer, head]),
                "normalized": float(normalized[kind][layer, head]),
                "rank": rank[kind, layer, head],
            }
            for kind, grid in self.scores.items()
            for layer in range(grid.size(0))
            for head in range(grid.size(1))
        ]


def head_importance(net: Seq2Seq, batches: Iterable[Batch]) -> HeadImportance:
    """I_h of every gated head of `net` over `batches` (see the module docstring); the gates are put back
    as they were (a pruned model keeps its mask, and its importances are measured at that mask)."""
    check_has_heads(net)
    gates = [gate for kind_gates in net.head_gates().values() for gate in kind_gates]
    kept = [gate.values for gate in gates]
    device = net.output_layer.weight.device
    totals = [torch.zeros(gate.num_heads, device=device) for gate in gates]
    sentences = 0
    was_training = net.training
    net.eval()
    try:
        for batch in batches:
            size = batch.src.size(0)
            per_sentence = [
                (torch.ones(gate.num_heads, device=device) if values is None else values.detach())
                .expand(size, gate.num_heads)
                .clone()
                .requires_grad_()
                for gate, values in zip(gates, kept, strict=True)
            ]  # each [batch, heads]
            for gate, values in zip(gates, per_sentence, strict=True):
                gate.set(values)
            with torch.enable_grad():
                loss = sentence_losses(net, batch, device).sum()
                grads = torch.autograd.grad(loss, per_sentence)
            for total, grad in zip(totals, grads, strict=True):
                total += grad.abs().sum(dim=0)
            sentences += size
    finally:
        for gate, values in zip(gates, kept, strict=True):
            gate.set(values)
        net.train(was_training)
    if sentences == 0:
        raise ConfigError("There are no sentences to measure head importance on: the data set is empty.")
    scores: dict[str, list[Tensor]] = {}
    for gate, total in zip(gates, totals, strict=True):
        scores.setdefault(gate.kind, []).append((total / sentences).cpu())
    return HeadImportance({kind: torch.stack(rows) for kind, rows in scores.items()}, sentences)


def sentence_losses(net: Seq2Seq, batch: Batch, device: torch.device) -> Tensor:
    """The cross-entropy of each sentence's reference (teacher forcing), averaged over its tokens
    (`<eos>` included): `[batch]`."""
    tgt_out = batch.tgt_out.to(device)
    logits, _ = net(batch.src.to(device), batch.src_len.to(device), batch.tgt_in.to(device))
    nll = F.cross_entropy(
        logits.float().transpose(1, 2), tgt_out, ignore_index=net.pad_id, reduction="none"
    )  # [batch, tgt_len]
    tokens = (tgt_out != net.pad_id).sum(dim=1).clamp(min=1)
    return nll.sum(dim=1) / tokens


def head_mask(net: Seq2Seq, pruned: Sequence[Head], base: HeadMask | None = None) -> HeadMask:
    """The mask of every gated kind of `net` with the heads `pruned` set to 0 (on top of `base`, e.g. the
    mask of an already pruned model; otherwise every other head is 1)."""
    mask = {kind: [[1.0] * gate.num_heads for gate in gates] for kind, gates in net.head_gates().items()}
    for kind, layers in (base or {}).items():
        mask[kind] = [[float(value) for value in heads] for heads in layers]
    for kind, layer, head in pruned:
        mask[kind][layer][head] = 0.0
    return mask


def current_mask(net: Seq2Seq) -> HeadMask:
    """The model's gates as a mask (1 for a gate that is not set)."""
    return {
        kind: [[1.0] * gate.num_heads if gate.values is None else gate.values.tolist() for gate in gates]
        for kind, gates in net.head_gates().items()
    }


def heads_to_prune(ranking: Sequence[Head], share: float) -> list[Head]:
    """The `share` (0..1) of all heads that go first: the least important, round(share * heads) of them."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    return list(ranking[: round(share * len(ranking))])


def reference_batches(
    codec: Codec,
    pairs: Sequence[tuple[str, str]],
    batch_size: int,
    max_src_len: int | None = None,
) -> list[Batch]:
    """(source, reference) pairs as teacher-forcing batches of similar length; sources are cut at
    `max_src_len` tokens, and a pair whose source has no tokens is left out."""
    examples = []
    for source, reference in pairs:
        src_ids = codec.encode_src(source)[:max_src_len]
        if src_ids:
            examples.append((src_ids, codec.encode_tgt(reference), source, reference))
    examples.sort(key=lambda example: (len(example[0]), len(example[1])))
    return [collate(examples[start : start + batch_size]) for start in range(0, len(examples), batch_size)]


def format_importance_table(importance: HeadImportance) -> str:
    """The importance of every head as a Markdown table: one row per attention kind and layer."""
    num_heads = max(grid.size(1) for grid in importance.scores.values())
    lines = [
        "| attention | layer | " + " | ".join(f"head {h}" for h in range(num_heads)) + " |",
        "|---|---|" + "---|" * num_heads,
    ]
    for kind, grid in importance.scores.items():
        for layer, row in enumerate(grid.tolist()):
            cells = [f"{value:.4f}" for value in row] + [""] * (num_heads - len(row))
            lines.append(f"| {kind} | {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
