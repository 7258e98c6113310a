"""The attention explorer: one self-contained HTML page of every attention a model computed for some sentences.

For each sentence: the source, the n-best hypotheses of the search with their scores and, for the one
selected, its attention as a heatmap: the cross-attention and, for Transformers, the encoder's and the
decoder's self-attention, any layer and head or their mean. Hovering a cell shows its weight and both
tokens. A coverage model also shows its coverage vector; a sentence given with its reference and gold
alignment also shows the reference, read by the model, with the gold links on top.

Where the weights come from: the search picks the hypotheses (`SequenceGenerator`), then each is read by
the model once more with its own tokens fed in (teacher forcing, `Seq2Seq.attention_maps`), which gives
every layer and head; the last layer's cross-attention is what the search itself computed (up to
rounding). Weights travel as float32 bytes (base64), so the page shows the model's values exactly.

The page is `assets/explorer.html` with `explorer.css`, `explorer.js` and the data written into it: no
file, script or font is loaded from anywhere else, so it works offline, opened from disk.
"""

import base64
import html
import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from src.aligner import tokenize_words
from src.alignment import GoldLinks
from src.data.batch import collate_sources, pad
from src.data.codec import Codec
from src.data.vocab import BOS, BOS_ID, EOS
from src.decoding import Hypothesis, SequenceGenerator
from src.models.decoders import ATTENTION_STATE
from src.models.seq2seq import Seq2Seq

log = logging.getLogger(__name__)

KIND_LABELS = {
    "cross": "cross-attention (output → source)",
    "encoder": "encoder self-attention (source → source)",
    "decoder": "decoder self-attention (output → output so far)",
}
COVERAGE = ATTENTION_STATE + "coverage"
PLACEHOLDERS = re.compile(r"__TITLE__|/\*__CSS__\*/|/\*__JS__\*/|__DATA__")


@dataclass
class Sentence:
    """One sentence to explore: its source text and, for a sentence pair, its source words (tokenized one
    by one, so that each token knows its word), its reference words and the gold links between them."""

    source: str
    src_words: list[str] | None = None
    reference: list[str] | None = None
    gold: GoldLinks | None = None


class Explorer:
    """Searches translations of sentences with `generator` and collects every attention of `net` for
    each hypothesis: the data of the page (`page_data`, written by `write_page`)."""

    def __init__(
        self,
        net: Seq2Seq,
        codec: Codec,
        generator: SequenceGenerator,
        max_src_len: int | None = None,
    ) -> None:
        self.net, self.codec, self.generator, self.max_src_len = net, codec, generator, max_src_len
        self.device = next(net.parameters()).device
        self.kinds, self.has_coverage = self._describe_model()

    def _describe_model(self) -> tuple[dict[str, tuple[int, int]], bool]:
        """(layers, heads) of each kind of attention the model has (cross-attention first), and whether
        its attention carries a coverage vector, from one token read through it."""
        src = torch.tensor([[self.net.eos_id]], device=self.device)
        src_len = torch.tensor([1], device=self.device)
        with torch.inference_mode():
            maps = self.net.attention_maps(src, src_len, torch.tensor([[BOS_ID]], device=self.device))
            _, state = self.net.start_decoding(self.net.encode(src, src_len))
        kinds = {kind: tuple(maps[kind].shape[1:3]) for kind in KIND_LABELS if kind in maps}
        return kinds, COVERAGE in state

    def sentence_data(self, sentence: Sentence) -> dict[str, Any] | None:
        """The page's data for one sentence (None for a source with no tokens)."""
        if sentence.src_words is None:
            src_ids = self.codec.encode_src(sentence.source)
            src_owners = None
        else:
            src_pieces, src_owners = tokenize_words(self.codec.src_tokenizer, sentence.src_words)
            src_ids = self.codec.src_vocab.encode(src_pieces)
        if self.max_src_len is not None and len(src_ids) > self.max_src_len:
            log.warning(
                "Truncated a source of %d tokens to max_src_len=%d: %.60s...",
                len(src_ids),
                self.max_src_len,
                sentence.source,
            )
            src_ids = src_ids[: self.max_src_len]
        src_owners = None if src_owners is None else src_owners[: len(src_ids)]
        if not src_ids:
            return None
        src, src_len = collate_sources([src_ids])
        src, src_len = src.to(self.device), src_len.to(self.device)
        was_training = self.net.training
        self.net.eval()
        try:
            hypotheses = self.generator(self.net, src, src_len)[0]
            entries = [(str(rank), h.tokens, h) for rank, h in enumerate(hypotheses, start=1)]
            tgt_owners = None
            if sentence.reference is not None:
                tgt_pieces, tgt_owners = tokenize_words(self.codec.tgt_tokenizer, sentence.reference)
                entries.append(("reference", self.codec.tgt_vocab.encode(tgt_pieces), None))
            maps, log_probs = self._forced(src, src_len, [ids for _, ids, _ in entries])
        finally:
            self.net.train(was_training)

        src_tokens = self.codec.src_vocab.lookup(src_ids)
        data: dict[str, Any] = {"source": sentence.source, "src_tokens": src_tokens}
        if "encoder" in maps:
            data["encoder"] = _encode_weights(maps["encoder"][0, :, :, : len(src_ids), : len(src_ids)])
        data["hypotheses"] = []
        for row, (label, tokens, hypothesis) in enumerate(entries):
            length = len(tokens) + 1  # the output tokens and <eos>
            entry = self._hypothesis(
                label, tokens, hypothesis, log_probs[row], maps, row, length, len(src_ids)
            )
            if hypothesis is None and sentence.gold is not None and src_owners is not None:
                entry["gold"] = gold_cells(sentence.gold, src_owners, tgt_owners)
            data["hypotheses"].append(entry)
        return data

    def _forced(
        self, src: Tensor, src_len: Tensor, targets: list[list[int]]
    ) -> tuple[dict[str, Tensor], list[float]]:
        """Every attention of the model reading each of `targets` (teacher forcing) for one source, and
        each target's log-probability (<eos> included). maps: kind -> [targets, layers, heads, rows, cols]."""
        count = len(targets)
        tgt_in = pad([[BOS_ID, *tokens] for tokens in targets]).to(self.device)
        tgt_out = pad([[*tokens, self.net.eos_id] for tokens in targets]).to(self.device)
        src, src_len = src.expand(count, -1), src_len.expand(count)
        with torch.inference_mode():
            maps = self.net.attention_maps(src, src_len, tgt_in)
            logits, _ = self.net(src, src_len, tgt_in)
        token_log_probs = logits.float().log_softmax(dim=-1).gather(2, tgt_out.unsqueeze(2)).squeeze(2)
        token_log_probs = token_log_probs.masked_fill(tgt_out == self.net.pad_id, 0.0)
        return {kind: weights.float().cpu() for kind, weights in maps.items()}, token_log_probs.sum(
            1
        ).tolist()

    def _hypothesis(
        self,
        label: str,
        tokens: list[int],
        hypothesis: Hypothesis | None,
        log_prob: float,
        maps: dict[str, Tensor],
        row: int,
        length: int,
        src_len: int,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "label": label,
            "text": self.codec.decode_tgt(tokens),
            "tokens": [*self.codec.tgt_vocab.lookup(tokens), EOS],
            "in_tokens": [BOS, *self.codec.tgt_vocab.lookup(tokens)],
            "score": None if hypothesis is None else hypothesis.score,
            "log_prob": log_prob if hypothesis is None else hypothesis.log_prob,
            "cross": _encode_weights(maps["cross"][row, :, :, :length, :src_len]),
        }
        if "decoder" in maps:
            entry["decoder"] = _encode_weights(maps["decoder"][row, :, :, :length, :length])
        if self.has_coverage:
            # the coverage attention's own definition: cov_t = sum of the weights of steps up to t
            weights = maps["cross"][row, -1, :, :length, :src_len].mean(dim=0)  # [length, src_len]
            entry["coverage"] = _encode_weights(weights.cumsum(dim=0))
        return entry

    def page_data(self, sentences: list[Sentence], title: str, model: dict[str, Any]) -> dict[str, Any]:
        """All the page shows: the title, the model, the kinds of attention and each sentence's data
        (`skipped`: the 1-based numbers of sentences without source tokens)."""
        explored = [self.sentence_data(sentence) for sentence in sentences]
        return {
            "title": title,
            "model": model,
            "kinds": {
                kind: {"label": KIND_LABELS[kind], "layers": layers, "heads": heads}
                for kind, (layers, heads) in self.kinds.items()
            },
            "coverage": self.has_coverage,
            "sentences": [data for data in explored if data is not None],
            "skipped": [number for number, data in enumerate(explored, start=1) if data is None],
        }


def gold_cells(
    gold: GoldLinks, src_owners: list[int | None], tgt_owners: list[int | None]
) -> dict[str, list[list[int]]]:
    """The heatmap cells of the gold links: a link between source word i and target word j marks every
    (row, column) = (target token, source token) pair of their tokens; row k is the step that predicts
    target token k. {"sure": [[row, col], ...], "possible": [...] (possible but not sure)}."""

    def cells(links: frozenset[tuple[int, int]]) -> list[list[int]]:
        return sorted(
            [row, col]
            for i, j in links
            for row, tgt_word in enumerate(tgt_owners)
            if tgt_word == j
            for col, src_word in enumerate(src_owners)
            if src_word == i
        )

    return {"sure": cells(gold.sure), "possible": cells(gold.possible - gold.sure)}


def _encode_weights(weights: Tensor) -> str:
    """A float tensor as base64 of its float32 bytes, little-endian, in row-major order."""
    array = np.ascontiguousarray(weights.detach().float().cpu().numpy(), dtype="<f4")
    return base64.b64encode(array.tobytes()).decode("ascii")


def render_page(data: dict[str, Any]) -> str:
    """The explorer page with `data` in it: one HTML string, its styles and script inline."""
    assets = resources.files("src") / "assets"
    page = (assets / "explorer.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # inside <script> only "</" could end the element early; "<\/" is the same JSON string
    payload = payload.replace("</", "<\\/")
    replacements = {
        "__TITLE__": html.escape(data["title"]),
        "/*__CSS__*/": (assets / "explorer.css").read_text(encoding="utf-8"),
        "/*__JS__*/": (assets / "explorer.js").read_text(encoding="utf-8"),
        "__DATA__": payload,
    }
    # one pass, so that nothing inserted is read again as a placeholder
    return PLACEHOLDERS.sub(lambda match: replacements[match.group()], page)


def write_page(data: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(data), encoding="utf-8")
    return path
