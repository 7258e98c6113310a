"""Encoders: embedded source `[batch, src_len, emb]` -> `EncoderOutput`.

Every encoder returns the memory the attention reads, the source mask, and a `final` summary vector
that initialises the decoder (the "bridge"). Padding never changes what an encoder computes for the real
positions of a sentence: recurrent encoders pack the sequences, the others mask.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from src.checks import require_divides, require_fraction, require_sizes
from src.errors import ConfigError
from src.models.attention import HeadGate, gated_self_attention
from src.models.positional import LearnedPositions, build_positions


@dataclass
class EncoderOutput:
    memory: Tensor  # [batch, src_len, output_size]
    mask: Tensor  # [batch, src_len] bool, True = real token
    final: Tensor  # [batch, output_size]: summary of the source for the decoder's bridge
    # a recurrent encoder's final states of every layer, directions concatenated, for `decoder.bridge=copy`:
    # hidden [batch, layers, output_size]; cell, the same, for an LSTM (None otherwise)
    final_hidden: Tensor | None = None
    final_cell: Tensor | None = None


class Encoder(nn.Module):
    """Base class; `output_size` is the size of the memory vectors and of `final`."""

    output_size: int

    def forward(self, src_emb: Tensor, src_len: Tensor, mask: Tensor) -> EncoderOutput:
        """src_emb `[batch, src_len, emb]`, src_len `[batch]`, mask `[batch, src_len]` (True = real)."""
        raise NotImplementedError

    def self_attention_by_layer(self, src_emb: Tensor, src_len: Tensor, mask: Tensor) -> Tensor | None:
        """The self-attention of every layer, for reading: `[batch, layers, heads, src_len, src_len]`
        (row: the position that attends, column: the one attended to), or None for an encoder without
        self-attention (the recurrent and convolutional ones)."""
        return None


def rnn_class(
    group: str, rnn_type: str, hidden_size: int, num_layers: int, dropout: float
) -> type[nn.LSTM] | type[nn.GRU]:
    """nn.LSTM or nn.GRU for `<group>.rnn_type` (group: "encoder" or "decoder"), once the options of the
    recurrent encoder or decoder are checked."""
    require_sizes(group, hidden_size=hidden_size, num_layers=num_layers)
    require_fraction(f"{group}.dropout", dropout)
    if rnn_type == "lstm":
        return nn.LSTM
    if rnn_type == "gru":
        return nn.GRU
    raise ConfigError(f"{group}.rnn_type={rnn_type!r} is unknown; use lstm or gru.")


def check_transformer_options(
    group: str, d_model: int, num_layers: int, num_heads: int, d_ff: int, dropout: float, max_positions: int
) -> None:
    """The options of a Transformer encoder or decoder (`group` is "encoder" or "decoder")."""
    sizes = dict(d_model=d_model, num_layers=num_layers, num_heads=num_heads, d_ff=d_ff)
    require_sizes(group, **sizes, max_positions=max_positions)
    require_divides(group, "num_heads", num_heads, "d_model", d_model)
    require_fraction(f"{group}.dropout", dropout)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the real positions: x `[batch, len, size]`, mask `[batch, len]` -> `[batch, size]`."""
    keep = mask.unsqueeze(-1).to(x.dtype)  # [batch, len, 1]
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class RecurrentEncoder(Encoder):
    """A (bidirectional) LSTM or GRU over packed sequences.

    `hidden_size` is the size of the output: each direction has hidden_size / 2 units when
    bidirectional. `final` = [the last layer's final forward state; its final backward state] (the
    backward RNN ends on the first token). Packing means padding changes neither. `final_hidden` (and
    `final_cell` for an LSTM) hold every layer's final states the same way, for `decoder.bridge=copy`.
    """

    def __init__(
        self,
        input_size: int,
        rnn_type: Literal["lstm", "gru"] = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.1,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        rnn = rnn_class("encoder", rnn_type, hidden_size, num_layers, dropout)
        if bidirectional and hidden_size % 2 != 0:
            raise ConfigError(
                f"encoder.hidden_size={hidden_size} must be even with encoder.bidirectional=true "
                "(each direction gets half); use an even size or encoder.bidirectional=false."
            )
        self.rnn_type, self.num_layers = rnn_type, num_layers
        self.num_directions = 2 if bidirectional else 1
        self.rnn = rnn(
            input_size,
            hidden_size // self.num_directions,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def forward(self, src_emb: Tensor, src_len: Tensor, mask: Tensor) -> EncoderOutput:
        batch_size, max_len, _ = src_emb.shape
        packed = pack_padded_sequence(src_emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        packed_memory, hidden = self.rnn(packed)
        hidden, cell = hidden if isinstance(hidden, tuple) else (hidden, None)  # an LSTM returns (h, c)
        memory, _ = pad_packed_sequence(packed_memory, batch_first=True, total_length=max_len)
        final_hidden = self._by_layer(hidden)  # [batch, layers, hidden]
        return EncoderOutput(
            memory=self.dropout(memory),
            mask=mask,
            final=final_hidden[:, -1],  # [batch, hidden]: the last layer
            final_hidden=final_hidden,
            final_cell=None if cell is None else self._by_layer(cell),
        )

    def _by_layer(self, states: Tensor) -> Tensor:
        """nn.LSTM/GRU's final states `[layers * directions, batch, size]` -> `[batch, layers, directions *
        size]` (each layer's forward state, then its backward state)."""
        _, batch_size, size = states.shape
        by_layer = states.view(self.num_layers, self.num_directions, batch_size, size).permute(2, 0, 1, 3)
        return by_layer.reshape(batch_size, self.num_layers, self.num_directions * size)


class ConvEncoder(Encoder):
    """A convolutional encoder in the style of ConvS2S (Gehring et al. 2017, "Convolutional Sequence to
    Sequence Learning", section 3):

        x_0 = Linear(token embedding + learned position embedding)
        x_l = sqrt(0.5) * (GLU(Conv1d(dropout(x_{l-1}))) + x_{l-1})       GLU(a; b) = a * sigmoid(b)

    Padded positions are zeroed before every convolution, so they look exactly like the convolution's
    own "same" zero padding and never leak into real positions. `final` = the mean of the real
    positions. (Unlike the paper, the memory is not projected back to the embedding size.)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 256,
        num_layers: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.1,
        max_positions: int = 512,
    ) -> None:
        super().__init__()
        require_sizes(
            "encoder",
            hidden_size=hidden_size,
            num_layers=num_layers,
            kernel_size=kernel_size,
            max_positions=max_positions,
        )
        require_fraction("encoder.dropout", dropout)
        if kernel_size % 2 == 0:
            raise ConfigError(
                f"encoder.kernel_size={kernel_size} must be odd so that a 'same' convolution is centred "
                "on each token; use e.g. 3 or 5."
            )
        self.positions = LearnedPositions(input_size, max_positions, owner="encoder")
        self.input_layer = nn.Linear(input_size, hidden_size)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(hidden_size, 2 * hidden_size, kernel_size, padding=kernel_size // 2)
            for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def forward(self, src_emb: Tensor, src_len: Tensor, mask: Tensor) -> EncoderOutput:
        padding = ~mask.unsqueeze(-1)  # [batch, src_len, 1]
        x = self.input_layer(self.dropout(self.positions(src_emb)))  # [batch, src_len, hidden]
        for convolution in self.convolutions:
            h = self.dropout(x).masked_fill(padding, 0.0).transpose(1, 2)  # [batch, hidden, src_len]
            h = F.glu(convolution(h), dim=1).transpose(1, 2)  # [batch, src_len, hidden]
            x = (h + x) * math.sqrt(0.5)
        memory = x.masked_fill(padding, 0.0)
        return EncoderOutput(memory=memory, mask=mask, final=masked_mean(memory, mask))


class TransformerEncoder(Encoder):
    """A pre-LayerNorm Transformer encoder (Vaswani et al. 2017; pre-LN as in Xiong et al. 2020, "On
    Layer Normalization in the Transformer Architecture"):

        x_0 = sqrt(d_model) * Linear(embedding) + positions
        x_l = x + SelfAttention(LN(x)),  then x + FeedForward(LN(x))
        memory = LN(x_L)

    Padded positions are excluded as attention keys. `final` = the mean of the real positions.

    `head_gates` hold a `HeadGate` per layer. A layer runs PyTorch's own (fused) layer unless its heads are
    gated or their weights are asked for (`self_attention_by_layer`); then it runs the same computation
    step by step (`gated_self_attention`) on the same parameters.
    """

    def __init__(
        self,
        input_size: int,
        d_model: int = 256,
        num_layers: int = 3,
        num_heads: int = 4,
        d_ff: int = 1024,
        dropout: float = 0.1,
        positions: Literal["sinusoidal", "learned"] = "sinusoidal",
        max_positions: int = 512,
    ) -> None:
        super().__init__()
        check_transformer_options("encoder", d_model, num_layers, num_heads, d_ff, dropout, max_positions)
        self.d_model = d_model
        self.input_layer = nn.Identity() if input_size == d_model else nn.Linear(input_size, d_model)
        self.positions = build_positions(positions, d_model, max_positions, owner="encoder")
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout, batch_first=True, norm_first=True)
            for _ in range(num_layers)
        )
        self.head_gates = nn.ModuleList(HeadGate(num_heads, kind="encoder") for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.output_size = d_model

    def forward(self, src_emb: Tensor, src_len: Tensor, mask: Tensor) -> EncoderOutput:
        memory, _ = self._run(src_emb, mask, need_weights=False)
        return EncoderOutput(memory=memory, mask=mask, final=masked_mean(memory, mask))

    def self_attention_by_layer(self, src_emb: Tensor, src_len: Tensor, mask: Tensor) -> Tensor:
        _, weights = self._run(src_emb, mask, need_weights=True)
        return torch.stack(weights, dim=1)  # [batch, layers, heads, src_len, src_len]

    def _run(self, src_emb: Tensor, mask: Tensor, need_weights: bool) -> tuple[Tensor, list[Tensor]]:
        """-> (memory `[batch, src_len, d_model]`, with `need_weights` every layer's self-attention
        weights `[batch, heads, src_len, src_len]`)."""
        x = self.input_layer(src_emb) * math.sqrt(self.d_model)  # [batch, src_len, d_model]
        x = self.dropout(self.positions(x))
        weights = []
        for layer, gate in zip(self.layers, self.head_gates, strict=True):
            if not (need_weights or gate.active):
                x = layer(x, src_key_padding_mask=~mask)  # PyTorch's key padding mask: True = ignore
                continue
            # nn.TransformerEncoderLayer's pre-LN forward, with the self-attention head by head
            h, layer_weights = gated_self_attention(layer.self_attn, layer.norm1(x), mask, None, gate)
            x = x + layer.dropout1(h)
            h = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(x)))))
            x = x + layer.dropout2(h)
            weights.append(layer_weights)
        return self.norm(x), weights
