"""A batch of examples, padding and collation: what training, decoding and the inference commands share
(without the LightningDataModule, which reads corpora)."""

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from src.data.vocab import BOS_ID, EOS_ID, PAD_ID

# src ids, tgt ids, src text, tgt text; for guided alignment also the token links (target token, source token)
Example = (
    tuple[list[int], list[int], str, str]
    | tuple[list[int], list[int], str, str, list[tuple[int, int]] | None]
)


@dataclass
class Batch:
    src: Tensor  # [batch, src_len] long, padded with PAD_ID
    src_len: Tensor  # [batch] long
    tgt_in: Tensor  # [batch, tgt_len] long: <bos> y
    tgt_out: Tensor  # [batch, tgt_len] long: y <eos>
    src_text: list[str]  # raw source lines (for logging)
    tgt_text: list[str]  # raw reference lines (for BLEU)
    # guided alignment (data.alignments_path): [batch, tgt_len, src_len] float, row t the target distribution
    # over source tokens of the step predicting tgt_out[:, t] (a token's links, normalised; zeros: no link)
    alignment: Tensor | None = None

    def __len__(self) -> int:
        return len(self.src_text)

    def pin_memory(self) -> "Batch":
        """Called by DataLoader(pin_memory=True), which does not look inside dataclasses."""
        return replace(
            self,
            src=self.src.pin_memory(),
            src_len=self.src_len.pin_memory(),
            tgt_in=self.tgt_in.pin_memory(),
            tgt_out=self.tgt_out.pin_memory(),
            alignment=self.alignment.pin_memory() if self.alignment is not None else None,
        )


def pad(id_lists: list[list[int]]) -> Tensor:
    """Right-pad with PAD_ID: [batch, longest] long."""
    out = torch.full((len(id_lists), max(map(len, id_lists), default=0)), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(id_lists):
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def collate_sources(id_lists: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Source id lists -> (src [batch, src_len], src_len [batch]), for inference."""
    return pad(id_lists), torch.tensor([len(ids) for ids in id_lists], dtype=torch.long)


def collate(examples: list[Example]) -> Batch:
    """Examples -> Batch with tgt_in = <bos> y and tgt_out = y <eos>."""
    src, src_len = collate_sources([ex[0] for ex in examples])
    return Batch(
        src=src,
        src_len=src_len,
        tgt_in=pad([[BOS_ID, *ex[1]] for ex in examples]),
        tgt_out=pad([[*ex[1], EOS_ID] for ex in examples]),
        src_text=[ex[2] for ex in examples],
        tgt_text=[ex[3] for ex in examples],
        alignment=alignment_targets(examples, src.size(1)),
    )


def alignment_targets(examples: list[Example], src_len: int) -> Tensor | None:
    """The guided-alignment targets of a batch ([batch, tgt_len, src_len]), or None without links."""
    if not any(len(ex) > 4 and ex[4] is not None for ex in examples):
        return None
    tgt_len = max(len(ex[1]) for ex in examples) + 1  # y <eos>
    target = torch.zeros(len(examples), tgt_len, src_len)
    for row, ex in enumerate(examples):
        for tgt_token, src_token in (ex[4] or []) if len(ex) > 4 else []:
            target[row, tgt_token, src_token] = 1.0
    return target / target.sum(dim=-1, keepdim=True).clamp(min=1.0)
