"""The translation model: embeddings + encoder + (attention inside the) decoder + output layer."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.checks import require_fraction, require_int, require_number
from src.errors import ConfigError
from src.models.attention import Attention, HeadGate
from src.models.decoders import Decoder
from src.models.encoders import Encoder, EncoderOutput
from src.models.initialization import InitScheme, initialize


class Seq2Seq(nn.Module):
    """An encoder-decoder translation model.

    `encoder`, `attention` and `decoder` arrive as partially built constructors (Hydra `_partial_: true`)
    and are completed here with the sizes only the model knows: the encoder gets `input_size`, the
    decoder gets the embedding, memory and encoder-final sizes and the attention constructor.

    `tie_embeddings` makes the output layer reuse the target embedding matrix (Press & Wolf 2017); it
    needs the decoder output size to equal `embedding_size` (no projection is added, so that the tied
    matrix is exactly the embedding).

    `head_mask` prunes attention heads at run time (Michel, Levy & Neubig 2019; `src.heads`): per kind of
    multi-head attention ("encoder" and "decoder" self-attention, "cross"), one list per layer of one
    gate per head, 0 (pruned) or 1 (kept), e.g. {"encoder": [[1, 0, 1, 1], [1, 1, 1, 1]]}; a kind left
    out keeps all its heads. It lives in the config, so a pruned checkpoint is the trained weights plus
    this mask, and every command that loads it runs the pruned model.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        encoder: Callable[..., Encoder],
        attention: Callable[..., Attention],
        decoder: Callable[..., Decoder],
        embedding_size: int = 256,
        tie_embeddings: bool = False,
        embedding_dropout: float = 0.0,
        init: InitScheme = "uniform",
        init_range: float = 0.1,
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
        head_mask: dict[str, list[list[float]]] | None = None,
    ) -> None:
        super().__init__()
        require_int("model.net.embedding_size", embedding_size)
        require_fraction("model.net.embedding_dropout", embedding_dropout)
        require_number("model.net.init_range", init_range, above=True)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_size, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_size, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.encoder = encoder(input_size=embedding_size)
        self.decoder = decoder(
            embedding_size=embedding_size,
            memory_size=self.encoder.output_size,
            encoder_final_size=self.encoder.output_size,
            attention=attention,
        )
        self.decoder.check_encoder(self.encoder)
        self.output_layer = nn.Linear(self.decoder.output_size, tgt_vocab_size)
        if tie_embeddings:
            if self.decoder.output_size != embedding_size:
                raise ConfigError(
                    f"model.net.tie_embeddings=true needs the decoder output size "
                    f"({self.decoder.output_size}) to equal model.net.embedding_size ({embedding_size}); "
                    "make them equal (decoder.hidden_size or decoder.d_model) or set "
                    "model.net.tie_embeddings=false."
                )
            self.output_layer.weight = self.tgt_embedding.weight
        initialize(self, init, init_range)
        if head_mask:
            self.set_head_mask(head_mask)

    @property
    def num_heads(self) -> int:
        """Number of cross-attention distributions per target position (0 without attention)."""
        return self.decoder.num_heads

    def head_gates(self) -> dict[str, list[HeadGate]]:
        """The gates on the heads of every multi-head attention, by kind ("encoder", "decoder", "cross"),
        one per layer in layer order; kinds the model does not have are left out."""
        gates: dict[str, list[HeadGate]] = {}
        for module in self.modules():
            if isinstance(module, HeadGate):
                gates.setdefault(module.kind, []).append(module)
        return gates

    def set_head_mask(self, head_mask: dict[str, list[list[float]]] | None) -> None:
        """Gate the heads with `head_mask` (see the class docstring); None or a kind left out: no gates."""
        head_mask = dict(head_mask or {})
        gates = self.head_gates()
        for kind, values in head_mask.items():
            if kind not in gates:
                raise ConfigError(
                    f"model.net.head_mask.{kind}: this model has no multi-head {kind} attention; it has "
                    f"{', '.join(gates) or 'none'}."
                )
            shape = [[gate.num_heads] for gate in gates[kind]]
            if [[len(heads)] for heads in values] != shape:
                raise ConfigError(
                    f"model.net.head_mask.{kind} has {[len(heads) for heads in values]} heads per layer, but "
                    f"the model's {kind} attention has {[gate.num_heads for gate in gates[kind]]}."
                )
        device = self.output_layer.weight.device
        for kind, kind_gates in gates.items():
            for layer, gate in enumerate(kind_gates):
                if kind not in head_mask:
                    gate.set(None)
                    continue
                values = [float(value) for value in head_mask[kind][layer]]
                # a layer that keeps every head needs no gate, and keeps PyTorch's fused attention
                gate.set(None if set(values) == {1.0} else torch.tensor(values, device=device))

    def encode(self, src: Tensor, src_len: Tensor) -> EncoderOutput:
        """src `[batch, src_len]`, src_len `[batch]` -> EncoderOutput (mask = src != pad)."""
        mask = src != self.pad_id  # [batch, src_len]
        return self.encoder(self.embedding_dropout(self.src_embedding(src)), src_len, mask)

    def start_decoding(self, enc: EncoderOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """-> (cache, state) for `decode_step`; see `Decoder.start`."""
        return self.decoder.start(enc)

    def decode_features(
        self, tokens: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """tokens `[batch, len]` -> (the decoder's output `[batch, len, hidden]`, the input of the output
        layer; attn_weights; state). A vocabulary shortlist applies its own rows of the output layer to it.

        A search step (one position, no gradient, eval mode) of a decoder with an input table (the recurrent
        ones: `RecurrentDecoder.input_table`) looks its tokens up in that table instead of embedding them
        and multiplying the embeddings by the decoder's input weights: the same numbers, less arithmetic."""
        if tokens.size(1) == 1 and not self.training and not torch.is_grad_enabled():
            table = self.decoder.input_table(self.tgt_embedding.weight)  # [tgt_vocab, features] or None
            if table is not None:
                return self.decoder.step_from_table(table[tokens[:, 0]], cache, state)
        tgt_emb = self.embedding_dropout(self.tgt_embedding(tokens))  # [batch, len, emb]
        return self.decoder(tgt_emb, cache, state)

    def _decode(
        self, tokens: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """tokens `[batch, len]` -> (logits `[batch, len, tgt_vocab]`, attn_weights, state)."""
        output, attn_weights, state = self.decode_features(tokens, cache, state)
        return self.output_layer(output), attn_weights, state

    def forward(
        self, src: Tensor, src_len: Tensor, tgt_in: Tensor, teacher_forcing_ratio: float = 1.0
    ) -> tuple[Tensor, Tensor | None]:
        """src `[batch, src_len]`, src_len `[batch]`, tgt_in `[batch, tgt_len]` (<bos> y) ->
        (logits `[batch, tgt_len, tgt_vocab]`, attn_weights `[batch, heads, tgt_len, src_len]` or None).

        With teacher_forcing_ratio < 1 the target is decoded step by step and, at each step and for each
        sentence independently, the model's own argmax prediction replaces the reference token with
        probability 1 - teacher_forcing_ratio.
        """
        if not 0.0 <= teacher_forcing_ratio <= 1.0:
            raise ConfigError(f"teacher_forcing_ratio={teacher_forcing_ratio} must be between 0 and 1.")
        cache, state = self.start_decoding(self.encode(src, src_len))
        if teacher_forcing_ratio == 1.0:
            logits, attn_weights, _ = self._decode(tgt_in, cache, state)
            return logits, attn_weights
        tokens = tgt_in[:, :1]  # [batch, 1]
        steps, weights = [], []
        for t in range(tgt_in.size(1)):
            logits_t, weights_t, state = self._decode(tokens, cache, state)  # [batch, 1, tgt_vocab]
            steps.append(logits_t)
            weights.append(weights_t)
            if t + 1 < tgt_in.size(1):
                use_reference = torch.rand(tgt_in.size(0), 1, device=tgt_in.device) < teacher_forcing_ratio
                tokens = torch.where(use_reference, tgt_in[:, t + 1 : t + 2], logits_t.argmax(dim=-1))
        attn_weights = None if weights[0] is None else torch.cat(weights, dim=2)
        return torch.cat(steps, dim=1), attn_weights

    def forward_embedded(
        self, src_emb: Tensor, src_len: Tensor, mask: Tensor, tgt_in: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """`forward` with teacher forcing, from the source embeddings instead of the source ids, so that
        gradients can be taken with respect to them (gradient attribution, `src.attribution`):
        src_emb `[batch, src_len, emb]` (what `src_embedding(src)` returns), src_len `[batch]`, mask
        `[batch, src_len]` (True = real token: `src != pad_id`), tgt_in `[batch, tgt_len]` ->
        (logits `[batch, tgt_len, tgt_vocab]`, attn_weights `[batch, heads, tgt_len, src_len]` or None)."""
        cache, state = self.start_decoding(self.encoder(self.embedding_dropout(src_emb), src_len, mask))
        logits, attn_weights, _ = self._decode(tgt_in, cache, state)
        return logits, attn_weights

    def attention_by_layer(self, src: Tensor, src_len: Tensor, tgt_in: Tensor) -> Tensor | None:
        """The cross-attention of every decoder layer, with the reference fed in (teacher forcing):
        src `[batch, src_len]`, src_len `[batch]`, tgt_in `[batch, tgt_len]` (<bos> y) ->
        `[batch, layers, heads, tgt_len, src_len]` or None without attention. The last layer's weights
        are the ones `forward` returns; recurrent decoders have one layer of attention."""
        cache, state = self.start_decoding(self.encode(src, src_len))
        tgt_emb = self.embedding_dropout(self.tgt_embedding(tgt_in))  # [batch, tgt_len, emb]
        return self.decoder.attention_by_layer(tgt_emb, cache, state)

    def attention_maps(self, src: Tensor, src_len: Tensor, tgt_in: Tensor) -> dict[str, Tensor]:
        """Every attention of the model, with `tgt_in` fed in (teacher forcing), for reading:
        src `[batch, src_len]`, src_len `[batch]`, tgt_in `[batch, tgt_len]` (<bos> y) ->

            "cross":   `[batch, layers, heads, tgt_len, src_len]` (as `attention_by_layer`)
            "encoder": `[batch, layers, heads, src_len, src_len]` (encoders with self-attention)
            "decoder": `[batch, layers, heads, tgt_len, tgt_len]` (decoders with self-attention)

        Rows are the attending positions, columns the attended ones; a kind the model lacks is left out.
        """
        mask = src != self.pad_id  # [batch, src_len]
        src_emb = self.embedding_dropout(self.src_embedding(src))
        maps = {"encoder": self.encoder.self_attention_by_layer(src_emb, src_len, mask)}
        cache, state = self.start_decoding(self.encoder(src_emb, src_len, mask))
        tgt_emb = self.embedding_dropout(self.tgt_embedding(tgt_in))  # [batch, tgt_len, emb]
        maps["decoder"] = self.decoder.self_attention_by_layer(tgt_emb, cache, state)
        maps["cross"] = self.decoder.attention_by_layer(tgt_emb, cache, state)
        return {kind: weights for kind, weights in maps.items() if weights is not None}

    def decode_step(
        self, tokens: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """tokens `[batch, 1]` -> (log_probs `[batch, tgt_vocab]` float32,
        attn_weights `[batch, heads, 1, src_len]` or None, the next state)."""
        logits, attn_weights, state = self._decode(tokens, cache, state)
        return F.log_softmax(logits.squeeze(1).float(), dim=-1), attn_weights, state
