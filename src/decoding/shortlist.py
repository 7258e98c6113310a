"""A lexical shortlist for the output layer: per batch, only the target tokens the source can translate into.

The output layer over the target vocabulary is most of a decoding step's work (`docs/BENCHMARK.md`). A
shortlist restricts it, per batch, to the union of
  - the `frequent` most frequent target tokens of the training corpus (function words, punctuation), and
  - for every source token of the batch, the `best` target tokens that co-occur with it most strongly in the
    training pairs (Dice coefficient over sentences: 2 c(s, t) / (c(s) + c(t)), where c counts the training
    pairs that contain the token(s)),
plus the special tokens. This is the vocabulary selection of Marian (`--shortlist`, lexical tables from an
aligner) and CTranslate2 (`vocab_mapping`); see also Jean et al. 2015, "On Using Very Large Target Vocabulary
for Neural Machine Translation", section 3.2, and L'Hostis et al. 2016, "Vocabulary Selection Strategies for
Neural Machine Translation" (co-occurrence counts do about as well as alignments).

`ShortlistedModel` wraps a model for one batch: the same `encode` / `start_decoding` / `decode_step` that the
searches call, over a vocabulary of the shortlisted tokens only. Its token ids are positions in the batch's
sorted shortlist, whose first four are the special tokens, so <pad>, <bos> and <eos> keep their ids and greedy
and beam search run unchanged; the output layer's shortlisted rows are gathered once per batch, and
`full_ids` maps the searches' hypotheses back to the model's vocabulary.
"""

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from src.checks import require_int
from src.data.vocab import SPECIALS
from src.decoding.hypothesis import Hypothesis
from src.errors import CheckpointError, ConfigError

SHORTLIST_FORMAT = 1
# the layers a shortlist gathers rows of: they stay float32 when the rest of the model is int8 (`quantize_int8`)
FLOAT_LAYERS = ("output_layer",)


class Shortlist:
    """candidates `[src_vocab, best]` long (target ids per source id, best first; -1: none), frequent `[n]`
    long (target ids), always `[k]` long (the ids every batch keeps: the special tokens, ids 0-3)."""

    def __init__(self, candidates: Tensor, frequent: Tensor, always: Tensor, tgt_vocab_size: int) -> None:
        self.candidates, self.frequent, self.always = candidates, frequent, always
        self.tgt_vocab_size = tgt_vocab_size

    @property
    def src_vocab_size(self) -> int:
        return self.candidates.size(0)

    @classmethod
    def build(
        cls,
        src_ids: list[list[int]],
        tgt_ids: list[list[int]],
        src_vocab_size: int,
        tgt_vocab_size: int,
        frequent: int = 100,
        best: int = 50,
    ) -> "Shortlist":
        """Count the training pairs (ids without <bos>/<eos>) and keep `frequent` and `best` per source id."""
        require_int("frequent", frequent, 0)
        require_int("best", best)
        pair_codes, src_seen, tgt_seen = [], torch.zeros(src_vocab_size), torch.zeros(tgt_vocab_size)
        for src, tgt in zip(src_ids, tgt_ids, strict=True):
            s, t = (
                torch.tensor(sorted(set(src)), dtype=torch.long),
                torch.tensor(sorted(set(tgt)), dtype=torch.long),
            )
            src_seen[s] += 1  # c(s): pairs whose source contains s
            tgt_seen[t] += 1
            pair_codes.append((s.unsqueeze(1) * tgt_vocab_size + t.unsqueeze(0)).flatten())
        codes, together = torch.unique(torch.cat(pair_codes), return_counts=True)  # c(s, t) per (s, t) seen
        s, t = codes // tgt_vocab_size, codes % tgt_vocab_size
        dice = 2 * together / (src_seen[s] + tgt_seen[t])
        specials = torch.tensor([SPECIALS.index(token) for token in SPECIALS])
        dice[torch.isin(t, specials)] = -1  # the specials are not translations of anything
        # per source id, its `best` targets by Dice: sort by (source id, -dice) (two stable sorts) and keep
        # the head of each source id's run
        order = torch.argsort(-dice, stable=True)
        order = order[torch.argsort(s[order], stable=True)]
        s, t, dice = s[order], t[order], dice[order]
        first = torch.ones_like(s, dtype=torch.bool)
        first[1:] = s[1:] != s[:-1]
        run_start = torch.cummax(torch.where(first, torch.arange(len(s)), 0), dim=0).values
        rank = torch.arange(len(s)) - run_start
        keep = (rank < best) & (dice > 0)
        candidates = torch.full((src_vocab_size, best), -1, dtype=torch.long)
        candidates[s[keep], rank[keep]] = t[keep]
        counts = tgt_seen.clone()
        counts[specials] = -1
        top = torch.argsort(counts, descending=True, stable=True)[: min(frequent, tgt_vocab_size)]
        top = top[counts[top] > 0]
        return cls(candidates, top, torch.arange(len(SPECIALS)), tgt_vocab_size)

    def for_batch(self, src: Tensor) -> Tensor:
        """The sorted target ids `[n]` a batch of sources `[batch, src_len]` may translate into."""
        src_ids = torch.unique(src.flatten().cpu())
        src_ids = src_ids[src_ids < self.src_vocab_size]
        ids = torch.cat([self.always, self.frequent, self.candidates[src_ids].flatten()])
        return torch.unique(ids[ids >= 0]).to(src.device)  # sorted

    def restrict(self, model: Any, src: Tensor) -> "ShortlistedModel":
        return ShortlistedModel(model, self.for_batch(src))

    def check_fits(self, src_vocab_size: int, tgt_vocab_size: int, path: Any) -> None:
        """The shortlist was built for a model with these vocabulary sizes."""
        if (self.src_vocab_size, self.tgt_vocab_size) != (src_vocab_size, tgt_vocab_size):
            raise CheckpointError(
                f"The shortlist {path} was built for vocabularies of {self.src_vocab_size} source and "
                f"{self.tgt_vocab_size} target tokens, but the model has {src_vocab_size} and "
                f"{tgt_vocab_size}: build one for this checkpoint with python -m src.shortlist ckpt_path=<ckpt>."
            )

    def save(self, path: str | Path) -> None:
        state = {
            "format": SHORTLIST_FORMAT,
            "candidates": self.candidates,
            "frequent": self.frequent,
            "always": self.always,
            "tgt_vocab_size": self.tgt_vocab_size,
        }
        tmp = Path(f"{path}.tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # atomic: a reader never sees half a file

    @classmethod
    def load(cls, path: str | Path) -> "Shortlist":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ConfigError(
                f"shortlist={path}: file not found. Build one with python -m src.shortlist."
            ) from None
        except Exception as err:
            raise CheckpointError(
                f"shortlist={path} is not a shortlist file ({type(err).__name__})."
            ) from None
        if not isinstance(state, dict) or state.get("format") != SHORTLIST_FORMAT:
            raise CheckpointError(
                f"shortlist={path} is not a shortlist file of format {SHORTLIST_FORMAT}: build it again with "
                "python -m src.shortlist."
            )
        return cls(state["candidates"], state["frequent"], state["always"], int(state["tgt_vocab_size"]))


class ShortlistedModel:
    """`model` over the target ids `vocab` `[n]` (sorted, starting with the special tokens' ids 0-3) for one
    batch: token i of this model is token vocab[i] of `model`."""

    def __init__(self, model: Any, vocab: Tensor) -> None:
        if vocab[: len(SPECIALS)].tolist() != list(range(len(SPECIALS))):
            raise ValueError(f"a shortlist starts with the special tokens' ids 0-3, got {vocab[:4].tolist()}")
        self.model, self.vocab = model, vocab
        layer = model.output_layer
        if not isinstance(layer, torch.nn.Linear):  # e.g. an int8 layer: its rows cannot be gathered
            raise ValueError(
                f"a shortlist gathers rows of a float output layer, not of a {type(layer).__name__}: quantise "
                f"with quantize_int8(net, keep_float={FLOAT_LAYERS})"
            )
        self.weight = layer.weight[vocab]  # [n, hidden], gathered once per batch
        self.bias = None if layer.bias is None else layer.bias[vocab]
        self.pad_id, self.bos_id, self.eos_id = model.pad_id, model.bos_id, model.eos_id

    def encode(self, src: Tensor, src_len: Tensor):
        return self.model.encode(src, src_len)

    def start_decoding(self, enc):
        return self.model.start_decoding(enc)

    def decode_step(
        self, tokens: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """As `Seq2Seq.decode_step`, in shortlist ids: tokens `[batch, 1]` -> log_probs `[batch, n]` float32
        (the softmax normalises over the shortlist), attn_weights, the next state."""
        features, attn_weights, state = self.model.decode_features(self.vocab[tokens], cache, state)
        logits = F.linear(features.squeeze(1), self.weight, self.bias)  # [batch, n]
        return F.log_softmax(logits.float(), dim=-1), attn_weights, state

    def full_ids(self, nbest: list[list[Hypothesis]]) -> list[list[Hypothesis]]:
        """The searches' hypotheses with their tokens as ids of the model's vocabulary."""
        vocab = self.vocab.tolist()
        return [
            [dataclasses.replace(h, tokens=[vocab[token] for token in h.tokens]) for h in hypotheses]
            for hypotheses in nbest
        ]
