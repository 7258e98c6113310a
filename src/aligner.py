"""Forced decoding: sentence pairs in, each pair's cross-attention out, with its tokens mapped to the words.

The model reads each given target with teacher forcing (no search): the decoder receives `<bos> y` and
its cross-attention at every step is returned, for every layer and head (`Seq2Seq.attention_by_layer`).
Shared by `python -m src.align` and anything else that reads attention as alignment.
"""

from collections.abc import Sequence

import torch
from torch import nn

from src.alignment import Pair, TokenAttention
from src.data.batch import collate_sources, pad
from src.data.codec import Codec
from src.data.tokenizers import Tokenizer, tokenize_words
from src.data.vocab import BOS_ID, Vocabulary
from src.errors import ConfigError, DataError


class Aligner:
    """Force-decode sentence pairs through `net`, in batches of similar length, results in input order."""

    def __init__(self, net: nn.Module, codec: Codec, batch_size: int = 64) -> None:
        if net.num_heads == 0:
            raise ConfigError(
                "This model has no attention to read alignments from: it was trained with attention=none. "
                "Align with a model trained with an attention (e.g. attention=bahdanau)."
            )
        self.net, self.codec, self.batch_size = net, codec, batch_size

    def attention(self, pairs: Sequence[Pair]) -> list[TokenAttention]:
        """Per pair (source words, target words), its attention over the model's tokens (`TokenAttention`:
        `[layers, heads, tgt_tokens + 1, src_tokens]`, float32, on the CPU)."""
        src = [self._encode(words, self.codec.src_tokenizer, self.codec.src_vocab) for words, _ in pairs]
        tgt = [self._encode(words, self.codec.tgt_tokenizer, self.codec.tgt_vocab) for _, words in pairs]
        for number, (ids, _) in enumerate(src, start=1):
            if not ids:
                raise DataError(
                    f"Pair {number}: the model's tokenizer turns its source into no tokens at all, so the "
                    "model cannot read it. Remove the pair or the characters the tokenizer drops."
                )
        order = sorted(range(len(pairs)), key=lambda i: (len(src[i][0]), len(tgt[i][0])))
        device = next(self.net.parameters()).device
        results: list[TokenAttention | None] = [None] * len(pairs)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    src_ids, src_len = collate_sources([src[i][0] for i in chunk])
                    tgt_in = pad([[BOS_ID, *tgt[i][0]] for i in chunk])
                    weights = self.net.attention_by_layer(
                        src_ids.to(device), src_len.to(device), tgt_in.to(device)
                    )
                    weights = weights.float().cpu()  # [batch, layers, heads, tgt_len, src_len]
                    for row, i in enumerate(chunk):
                        (src_ids_i, src_owners), (tgt_ids_i, tgt_owners) = src[i], tgt[i]
                        results[i] = TokenAttention(
                            weights=weights[row, :, :, : len(tgt_ids_i) + 1, : len(src_ids_i)].clone(),
                            src_words=src_owners,
                            tgt_words=tgt_owners,
                            num_src_words=len(pairs[i][0]),
                            num_tgt_words=len(pairs[i][1]),
                        )
        finally:
            self.net.train(was_training)
        return results

    @staticmethod
    def _encode(
        words: Sequence[str], tokenizer: Tokenizer, vocab: Vocabulary
    ) -> tuple[list[int], list[int | None]]:
        """Ids (unknown tokens as <unk>, as the model sees them) and each token's word."""
        tokens, owners = tokenize_words(tokenizer, words)
        return vocab.encode(tokens), owners
