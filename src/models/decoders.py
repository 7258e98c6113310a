"""Decoders: embedded target prefix + encoder output -> one vector per target position.

A decoder is driven in two phases:

    cache, state = decoder.start(encoder_output)              once per batch
    output, attn_weights, state = decoder(tgt_emb, cache, state)   for all positions, or one at a time

`cache` holds per-source tensors (attention keys and values, the source mask): beam search expands them
with repeat_interleave and never reorders them. `state` holds per-hypothesis tensors, batch-first (dim 0
= hypothesis): beam search reorders them with `index_select(0, ...)`. Running `forward` one position at a
time with the returned state gives the same outputs as running it over all positions at once.
"""

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.checks import require
from src.errors import ConfigError
from src.models.activations import tanh_
from src.models.attention import Attention, HeadGate, gated_self_attention
from src.models.encoders import (
    Encoder,
    EncoderOutput,
    RecurrentEncoder,
    check_transformer_options,
    rnn_class,
)
from src.models.positional import build_positions

# the choices of RecurrentDecoder's bridge, output_activation and dropout_at
BRIDGES = ("tanh", "copy")
OUTPUT_ACTIVATIONS = ("tanh", "none")
DROPOUT_PLACES = ("input", "output")
# the attention's own state lives in the decoder state under this prefix (e.g. "attention.coverage")
ATTENTION_STATE = "attention."


def attention_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The attention's part of a decoder state, without the prefix."""
    return {
        key.removeprefix(ATTENTION_STATE): value
        for key, value in state.items()
        if key.startswith(ATTENTION_STATE)
    }


def with_attention_state(state: dict[str, Tensor], attn_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`state` with the attention's part replaced by `attn_state`."""
    return {**state, **{ATTENTION_STATE + key: value for key, value in attn_state.items()}}


class Decoder(nn.Module):
    """Base class; `output_size` is the size of the output vectors, `num_heads` the number of
    cross-attention distributions it returns per position (0 without attention)."""

    output_size: int
    num_heads: int

    def check_encoder(self, encoder: Encoder) -> None:
        """Raise a ConfigError if this decoder cannot start from `encoder`'s output (by default it can)."""

    def start(self, enc: EncoderOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """-> (cache, state) before the first target position."""
        raise NotImplementedError

    def forward(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """tgt_emb `[batch, tgt_len, emb]` -> (output `[batch, tgt_len, output_size]`,
        attn_weights `[batch, heads, tgt_len, src_len]` or None, the state after these positions)."""
        raise NotImplementedError

    def attention_by_layer(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> Tensor | None:
        """The cross-attention of every layer that has one, for reading (e.g. as word alignments):
        tgt_emb `[batch, tgt_len, emb]` -> `[batch, layers, heads, tgt_len, src_len]`, or None without
        attention. A decoder with one attention (the recurrent ones) returns what `forward` returns,
        with layers = 1."""
        _, attn_weights, _ = self(tgt_emb, cache, state)
        return None if attn_weights is None else attn_weights.unsqueeze(1)

    def input_table(self, embedding: Tensor) -> Tensor | None:
        """For decoding: the decoder's first input transform of every target word, embedding `[vocab, emb]`
        -> `[vocab, features]`, that `step_from_table` steps from; None (the default): this decoder has none,
        its steps go through `forward`."""
        return None

    def step_from_table(
        self, embedded: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """One decoding position from its tokens' rows of `input_table`, `[batch, features]` -> what
        `forward` returns for one position."""
        raise NotImplementedError(f"{type(self).__name__} has no input table")

    def self_attention_by_layer(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> Tensor | None:
        """The causal self-attention of every layer, for reading: tgt_emb `[batch, tgt_len, emb]` ->
        `[batch, layers, heads, tgt_len, prefix_len + tgt_len]` (row t: the position that reads the t-th
        new input token; columns: every input token so far), or None for a decoder without
        self-attention (the recurrent ones)."""
        return None


class RecurrentDecoder(Decoder):
    """A conditional LSTM/GRU decoder in the style of Luong et al. (2015) and JoeyNMT:

        h_t = RNN([e_t; o_{t-1}], h_{t-1})          input feeding: o_{t-1} is the previous output
        c_t = attention(query=h_t, memory)
        o_t = tanh(W [h_t; c_t])                   the "attentional vector", the decoder's output

    Bridge (`bridge`): `tanh`, every layer's initial hidden state is tanh(W_b final) (an LSTM's cell state
    starts at zero; JoeyNMT); `copy`, the recurrent encoder's final states of every layer (hidden, and cell
    for an LSTM, directions concatenated) are the decoder's initial states as they are (OpenNMT-py without
    a bridge; needs an encoder of the same RNN type, layers and size). o_0 = 0.

    `output_activation=none` drops the tanh: o_t = W [h_t; c_t] (OpenNMT-py's MLP attention). Dropout
    (`dropout_at`) acts on the attentional layer's `input` [h_t; c_t] (JoeyNMT), or on its `output` o_t
    (OpenNMT-py), so that both the output layer and the next step's input feeding see the dropped-out o_t.

    With `input_feeding=False` the RNN reads only e_t, so it runs over all positions in one call and the
    attention receives all queries at once. With attention=none, c_t is empty and
    o_t = tanh(W h_t). With input feeding, several positions (teacher forcing) run as a time loop with the
    embedding part of the RNN input computed for all positions before it; one position (a search step)
    is one call of the RNN.

    State: {"hidden": [batch, layers, hidden], "cell" (LSTM), "input_feed": [batch, hidden] (input
    feeding), "attention.<key>" (the attention's own state)}.
    """

    def __init__(
        self,
        embedding_size: int,
        memory_size: int,
        encoder_final_size: int,
        attention: Callable[..., Attention],
        rnn_type: Literal["lstm", "gru"] = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.1,
        input_feeding: bool = True,
        bridge: Literal["tanh", "copy"] = "tanh",
        output_activation: Literal["tanh", "none"] = "tanh",
        dropout_at: Literal["input", "output"] = "input",
    ) -> None:
        super().__init__()
        rnn = rnn_class("decoder", rnn_type, hidden_size, num_layers, dropout)
        for option, value, choices in (
            ("bridge", bridge, BRIDGES),
            ("output_activation", output_activation, OUTPUT_ACTIVATIONS),
            ("dropout_at", dropout_at, DROPOUT_PLACES),
        ):
            require(value in choices, f"decoder.{option}", value, f"one of {', '.join(choices)}")
        self.output_activation, self.dropout_at, self.rnn_type = output_activation, dropout_at, rnn_type
        self.attention = attention(query_size=hidden_size, key_size=memory_size)
        self.num_heads = self.attention.num_heads
        self.is_lstm = rnn is nn.LSTM
        self.num_layers = num_layers
        self.input_feeding = input_feeding
        self.rnn = rnn(
            embedding_size + (hidden_size if input_feeding else 0),
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.bridge = nn.Linear(encoder_final_size, hidden_size) if bridge == "tanh" else None
        self.output_layer = nn.Linear(hidden_size + self.attention.output_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def check_encoder(self, encoder: Encoder) -> None:
        """`bridge=copy` takes the encoder's final states as they are: the encoder must be recurrent, of
        the same RNN type, with as many layers and the same size."""
        if self.bridge is not None:  # bridge=tanh learns its own map from any encoder's final vector
            return
        same = isinstance(encoder, RecurrentEncoder) and (
            encoder.rnn_type,
            encoder.num_layers,
            encoder.output_size,
        ) == (self.rnn_type, self.num_layers, self.output_size)
        if not same:
            mine = f"{self.rnn_type}, {self.num_layers} layer(s) of {self.output_size}"
            theirs = (
                f"{encoder.rnn_type}, {encoder.num_layers} layer(s) of {encoder.output_size}"
                if isinstance(encoder, RecurrentEncoder)
                else f"a {type(encoder).__name__}"
            )
            raise ConfigError(
                f"decoder.bridge=copy starts the decoder from the encoder's final states, so it needs a recurrent "
                f"encoder like the decoder ({mine}); the encoder is {theirs}. Match encoder.rnn_type, "
                "encoder.num_layers and encoder.hidden_size to the decoder's, or use decoder.bridge=tanh."
            )

    def start(self, enc: EncoderOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        keys, values = self.attention.prepare(enc.memory)
        cache = {"keys": keys, "values": values, "mask": enc.mask}
        if self.bridge is None:  # bridge=copy: the encoder's final states of every layer, as they are
            state = {"hidden": enc.final_hidden}  # [batch, layers, hidden]
            if self.is_lstm:
                state["cell"] = enc.final_cell
        else:
            hidden = torch.tanh(self.bridge(enc.final))  # [batch, hidden]
            state = {"hidden": hidden.unsqueeze(1).repeat(1, self.num_layers, 1)}  # [batch, layers, hidden]
            if self.is_lstm:
                state["cell"] = torch.zeros_like(state["hidden"])
        if self.input_feeding:
            state["input_feed"] = torch.zeros_like(state["hidden"][:, 0])  # [batch, hidden]
        return cache, with_attention_state(state, self.attention.init_state(enc.mask))

    def _attend(
        self, rnn_output: Tensor, cache: dict[str, Tensor], attn_state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """rnn_output `[batch, q_len, hidden]` -> (attentional vectors `[batch, q_len, hidden]`,
        weights, attention state)."""
        context, weights, attn_state = self.attention(
            rnn_output, cache["keys"], cache["values"], cache["mask"], attn_state
        )
        features = torch.cat([rnn_output, context], dim=-1)  # [batch, q_len, hidden + context]
        if self.dropout_at == "input":
            features = self.dropout(features)
        output = self.output_layer(features)
        if self.output_activation == "tanh":
            output = tanh_(output)  # in place: the output layer's result is ours
        if self.dropout_at == "output":
            output = self.dropout(output)
        return output, weights, attn_state

    def forward(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        attn_state = attention_state(state)
        if self.input_feeding and tgt_emb.size(1) > 1:
            return self._forward_input_feeding(tgt_emb, cache, state, attn_state)
        # one call of the RNN: all positions at once without input feeding, or the single position of a
        # decoding step (where nn.LSTM's fused kernel beats the cell math of the loop)
        rnn_input = tgt_emb
        if self.input_feeding:
            rnn_input = torch.cat(
                [tgt_emb, state["input_feed"].unsqueeze(1)], dim=-1
            )  # [batch, 1, emb + hidden]
        # nn.LSTM wants [layers, batch, hidden]; the state is batch-first so beam search can reorder it
        hidden = state["hidden"].transpose(0, 1).contiguous()
        rnn_state = (hidden, state["cell"].transpose(0, 1).contiguous()) if self.is_lstm else hidden
        rnn_output, rnn_state = self.rnn(rnn_input, rnn_state)  # [batch, tgt_len, hidden]
        output, attn_weights, attn_state = self._attend(rnn_output, cache, attn_state)
        new_state = {"hidden": (rnn_state[0] if self.is_lstm else rnn_state).transpose(0, 1)}
        if self.is_lstm:
            new_state["cell"] = rnn_state[1].transpose(0, 1)
        if self.input_feeding:
            new_state["input_feed"] = output[:, -1]
        return output, attn_weights, with_attention_state(new_state, attn_state)

    def _forward_input_feeding(
        self,
        tgt_emb: Tensor,
        cache: dict[str, Tensor],
        state: dict[str, Tensor],
        attn_state: dict[str, Tensor],
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """The time loop over several positions (teacher forcing), running the RNN's cell math on its own
        weights: calling nn.LSTM once per position would pay, forward and backward, the set-up of its
        whole-sequence kernel at every step.

        Work that does not depend on the previous step is hoisted out of the loop: the first layer's input
        weights split as W_ih [e_t; o_{t-1}] = W_e e_t + W_o o_{t-1}, and W_e e_t (+ biases) is one matmul
        for all positions. Inputs and outputs cross the loop as lists (unbind / stack), so the backward
        pass does not add a full-size gradient per step the way slicing [:, t] would.
        """
        w_e, bias = self._embedding_weights(tgt_emb.size(-1))
        # [batch, gates * hidden] per position: the embedding part of the first layer's input, at once
        embedded = F.linear(tgt_emb.transpose(0, 1), w_e, bias).unbind(0)
        layers = self._cell_layers()
        hidden = list(state["hidden"].unbind(1))  # per layer [batch, hidden]
        cell = list(state["cell"].unbind(1)) if self.is_lstm else []
        input_feed = state["input_feed"]  # [batch, hidden]
        outputs, weights = [], []
        for embedded_t in embedded:
            output_t, weights_t, attn_state = self._time_step(
                embedded_t, input_feed, hidden, cell, layers, cache, attn_state
            )
            input_feed = output_t.squeeze(1)
            outputs.append(input_feed)
            weights.append(weights_t)
        output = torch.stack(outputs, dim=1)  # [batch, tgt_len, hidden]
        attn_weights = None if weights[0] is None else torch.cat(weights, dim=2)
        return output, attn_weights, with_attention_state(self._state(hidden, cell, input_feed), attn_state)

    def input_table(self, embedding: Tensor) -> Tensor | None:
        """The first layer's input transform of every target word, for decoding: embedding `[vocab, emb]`
        (the target embedding matrix) -> `[vocab, gates * hidden]`, W_e e_v + b for each word v, where W_e
        is the embedding's part of the first layer's input weights (all of them without input feeding).

        A search step then looks its tokens' rows up (`step_from_table`) instead of multiplying their
        embeddings by W_e: a third of the step's recurrent arithmetic with input feeding (W_ih is
        [gates * hidden, emb + hidden]). Kept between calls (one [vocab, gates * hidden] tensor, not saved
        in the weights) and made again when the embedding or the first layer's weights change (their
        storage or version: an optimizer step, `load_state_dict`, `.to()`)."""
        weights = (embedding, *self._layer_weights(0))
        key = tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)
        if getattr(self, "_input_table_key", None) != key:
            # in the weights' dtype whatever autocast is on (a step under autocast casts its rows as it casts
            # the weights), and a plain tensor even when made under inference_mode, so that the module can
            # still be copied
            autocast_off = torch.autocast(embedding.device.type, enabled=False)
            with autocast_off, torch.inference_mode(False), torch.no_grad():
                self._input_table = F.linear(embedding, *self._embedding_weights(embedding.size(1)))
            self._input_table_key = key
        return self._input_table

    def step_from_table(
        self, embedded: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """One decoding position from its tokens' rows of `input_table`: embedded `[batch, gates * hidden]`
        -> what `forward` returns for one position (output `[batch, 1, hidden]`, weights, state)."""
        hidden = list(state["hidden"].unbind(1))
        cell = list(state["cell"].unbind(1)) if self.is_lstm else []
        input_feed = state.get("input_feed")
        output, attn_weights, attn_state = self._time_step(
            embedded, input_feed, hidden, cell, self._cell_layers(), cache, attention_state(state)
        )
        new_state = self._state(hidden, cell, output[:, -1] if self.input_feeding else None)
        return output, attn_weights, with_attention_state(new_state, attn_state)

    def _time_step(
        self,
        embedded_t: Tensor,
        input_feed: Tensor | None,
        hidden: list[Tensor],
        cell: list[Tensor],
        layers: list[tuple[Tensor | None, Tensor | None, Tensor, Tensor | None]],
        cache: dict[str, Tensor],
        attn_state: dict[str, Tensor],
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """One position through every layer's cell math and the attention. embedded_t `[batch, gates *
        hidden]` (W_e e_t + b), input_feed `[batch, hidden]` (o_{t-1}; None without input feeding);
        `hidden` and `cell` (per layer `[batch, hidden]`) are updated in place -> (output `[batch, 1,
        hidden]`, weights `[batch, heads, 1, src_len]` or None, attention state)."""
        x = input_feed
        for layer, (w_x, x_bias, w_h, h_bias) in enumerate(layers):
            if layer == 0:
                gates_x = embedded_t if w_x is None else torch.addmm(embedded_t, x, w_x)
            else:
                x = F.dropout(x, self.rnn.dropout, self.training)  # nn.LSTM's dropout between layers
                gates_x = torch.addmm(x_bias, x, w_x)
            if self.is_lstm:
                gates = torch.addmm(gates_x, hidden[layer], w_h)
                hidden[layer], cell[layer] = lstm_cell(gates, cell[layer])
            else:
                hidden[layer] = gru_cell(gates_x, torch.addmm(h_bias, hidden[layer], w_h), hidden[layer])
            x = hidden[layer]
        return self._attend(x.unsqueeze(1), cache, attn_state)

    def _embedding_weights(self, emb_size: int) -> tuple[Tensor, Tensor]:
        """(W_e `[gates * hidden, emb]`, the bias added to W_e e_t): the first layer's input weights of the
        embedding; an LSTM adds both biases on the input side, a GRU only b_ih (b_hh belongs to its
        candidate gate's W_hh h)."""
        w_ih, _, b_ih, b_hh = self._layer_weights(0)
        return w_ih[:, :emb_size], b_ih + b_hh if self.is_lstm else b_ih

    def _cell_layers(self) -> list[tuple[Tensor | None, Tensor | None, Tensor, Tensor | None]]:
        """Per layer (W_x^T, x bias, W_hh^T, h bias), sliced and transposed once per call, not per step.
        The first layer's x is o_{t-1} (W_x^T None without input feeding) and its x bias is in the embedded
        input; a GRU's h bias is b_hh, an LSTM's None (both biases are on the input side)."""
        layers = []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer_weights(layer)
            x_bias, h_bias = (b_ih + b_hh, None) if self.is_lstm else (b_ih, b_hh)
            if layer == 0:
                emb_size = w_ih.size(1) - (self.output_size if self.input_feeding else 0)
                w_x = w_ih[:, emb_size:].t() if self.input_feeding else None
                layers.append((w_x, None, w_hh.t(), h_bias))
            else:
                layers.append((w_ih.t(), x_bias, w_hh.t(), h_bias))
        return layers

    def _state(
        self, hidden: list[Tensor], cell: list[Tensor], input_feed: Tensor | None
    ) -> dict[str, Tensor]:
        """The decoder state (without the attention's part) from per-layer lists of `[batch, hidden]`."""
        state = {"hidden": torch.stack(hidden, dim=1)}  # [batch, layers, hidden]
        if self.is_lstm:
            state["cell"] = torch.stack(cell, dim=1)
        if self.input_feeding:
            state["input_feed"] = input_feed
        return state

    def _layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(W_ih, W_hh, b_ih, b_hh) of one layer of `self.rnn`."""
        return tuple(
            getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )


def lstm_cell(gates: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from its pre-activations `[batch, 4 * hidden]` (nn.LSTM's gate order i, f, g, o) and
    the previous cell `[batch, hidden]` -> (hidden, cell)."""
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)  # one backward op for all four
    cell = torch.addcmul(forget_gate.sigmoid() * cell, input_gate.sigmoid(), candidate.tanh())
    return output_gate.sigmoid() * cell.tanh(), cell


def gru_cell(gates_x: Tensor, gates_h: Tensor, hidden: Tensor) -> Tensor:
    """One GRU step (nn.GRU's equations and gate order r, z, n) from W_ih x + b_ih and W_hh h + b_hh,
    each `[batch, 3 * hidden]`, and the previous hidden `[batch, hidden]` -> hidden."""
    reset_x, update_x, new_x = gates_x.chunk(3, dim=1)
    reset_h, update_h, new_h = gates_h.chunk(3, dim=1)
    new = torch.tanh(torch.addcmul(new_x, (reset_x + reset_h).sigmoid(), new_h))
    return torch.lerp(new, hidden, (update_x + update_h).sigmoid())  # (1 - z) n + z h


class TransformerDecoderLayer(nn.Module):
    """One pre-LN decoder layer: causal self-attention, cross-attention (any parallel `Attention`), and
    a position-wise feed-forward network, each as x + sublayer(LayerNorm(x)).

    The self-attention runs PyTorch's own `nn.MultiheadAttention` unless its heads are gated
    (`self_attention_gate`) or its weights are asked for; then it runs head by head on the same parameters
    (`gated_self_attention`)."""

    def __init__(
        self, d_model: int, num_heads: int, d_ff: int, dropout: float, cross_attention: Attention
    ) -> None:
        super().__init__()
        self.self_attention_norm = nn.LayerNorm(d_model)
        self.self_attention = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.self_attention_gate = HeadGate(num_heads, kind="decoder")
        self.cross_attention_norm = nn.LayerNorm(d_model)
        self.cross_attention = cross_attention
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        future: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Tensor,
        cached: Tensor,
        need_self_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """x `[batch, len, d_model]`: the new positions; cached `[batch, t, d_model]`: the self-attention
        inputs LN(x) of the t positions before them (the keys and values are computed from these); future
        `[len, t + len]` (True = a later position, hidden) -> (x `[batch, len, d_model]`, cross-attention
        weights `[batch, heads, len, src_len]`, with `need_self_weights` the self-attention weights
        `[batch, heads, len, t + len]`, else None; the self-attention inputs of all t + len positions)."""
        h = self.self_attention_norm(x)
        inputs = torch.cat([cached, h], dim=1)  # [batch, t + len, d_model]
        self_weights = None
        if need_self_weights or self.self_attention_gate.active:
            h, self_weights = gated_self_attention(
                self.self_attention, h, None, future, self.self_attention_gate, inputs
            )
        else:
            h, _ = self.self_attention(h, inputs, inputs, attn_mask=future, need_weights=False)
        x = x + self.dropout(h)
        h = self.cross_attention_norm(x)
        context, weights, _ = self.cross_attention(
            h, keys, values, mask, self.cross_attention.init_state(mask)
        )
        x = x + self.dropout(context)
        x = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        return x, weights, self_weights if need_self_weights else None, inputs


class TransformerDecoder(Decoder):
    """A pre-LN Transformer decoder (Vaswani et al. 2017) whose cross-attention is the configured
    attention (one instance per layer, query and key size d_model):

        x_0 = sqrt(d_model) * Linear(embedding) + positions
        per layer: x + CausalSelfAttention(LN(x)), x + CrossAttention(LN(x), memory), x + FeedForward(LN(x))
        output = LN(x_L)

    The memory is projected to d_model once per batch (in `start`) if its size differs. Incremental
    decoding caches, per layer, the self-attention inputs LN(x) of the positions decoded so far
    ({"inputs": [batch, layers, t, d_model]}): a step computes only its new positions, whose queries attend to
    the keys and values of the cached ones and of themselves (causally), so a step costs one position's
    feed-forward and cross-attention instead of the whole prefix's. The
    returned weights are the last layer's cross-attention weights; `attention_by_layer` gives every
    layer's, `self_attention_by_layer` every layer's self-attention.
    """

    def __init__(
        self,
        embedding_size: int,
        memory_size: int,
        encoder_final_size: int,
        attention: Callable[..., Attention],
        d_model: int = 256,
        num_layers: int = 3,
        num_heads: int = 4,
        d_ff: int = 1024,
        dropout: float = 0.1,
        positions: Literal["sinusoidal", "learned"] = "sinusoidal",
        max_positions: int = 512,
    ) -> None:
        super().__init__()
        check_transformer_options("decoder", d_model, num_layers, num_heads, d_ff, dropout, max_positions)
        cross_attentions = [attention(query_size=d_model, key_size=d_model) for _ in range(num_layers)]
        self._check_cross_attention(cross_attentions[0])
        self.d_model = d_model
        self.num_heads = cross_attentions[0].num_heads
        self.input_layer = nn.Identity() if embedding_size == d_model else nn.Linear(embedding_size, d_model)
        self.memory_layer = nn.Identity() if memory_size == d_model else nn.Linear(memory_size, d_model)
        self.positions = build_positions(positions, d_model, max_positions, owner="decoder")
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(d_model, num_heads, d_ff, dropout, cross_attention)
            for cross_attention in cross_attentions
        )
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.output_size = d_model

    @staticmethod
    def _check_cross_attention(attention: Attention) -> None:
        others = "choose attention=multihead, scaled_dot, bahdanau, luong_dot, luong_general or luong_concat"
        if attention.output_size == 0:
            raise ConfigError(
                f"decoder=transformer cannot use attention={attention.name}: a Transformer decoder sees the "
                "source only through cross-attention (it has no initial state to bridge the encoder into). "
                f"Use decoder=lstm or decoder=gru with attention={attention.name}, or {others}."
            )
        if not attention.parallel:
            raise ConfigError(
                f"decoder=transformer cannot use attention={attention.name}: {attention.name} attention is "
                "sequential (each step needs the previous steps' attention). Use decoder=lstm or "
                f"decoder=gru with attention={attention.name}, or {others}."
            )

    def start(self, enc: EncoderOutput) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        memory = self.memory_layer(enc.memory)  # [batch, src_len, d_model]
        prepared = [layer.cross_attention.prepare(memory) for layer in self.layers]
        cache = {
            "keys": torch.stack([keys for keys, _ in prepared], dim=1),  # [batch, layers, ...]
            "values": torch.stack([values for _, values in prepared], dim=1),  # [batch, layers, ...]
            "mask": enc.mask,
        }
        inputs = enc.memory.new_zeros(enc.memory.size(0), len(self.layers), 0, self.d_model)
        return cache, {"inputs": inputs}  # [batch, layers, 0, d_model]: nothing decoded yet

    def forward(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        output, weights, state, _ = self._run(tgt_emb, cache, state)
        return output, weights[-1], state

    def attention_by_layer(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> Tensor | None:
        _, weights, _, _ = self._run(tgt_emb, cache, state)
        return torch.stack(weights, dim=1)  # [batch, layers, heads, tgt_len, src_len]

    def self_attention_by_layer(
        self, tgt_emb: Tensor, cache: dict[str, Tensor], state: dict[str, Tensor]
    ) -> Tensor | None:
        _, _, _, self_weights = self._run(tgt_emb, cache, state, need_self_weights=True)
        return torch.stack(self_weights, dim=1)  # [batch, layers, heads, tgt_len, t + tgt_len]

    def _run(
        self,
        tgt_emb: Tensor,
        cache: dict[str, Tensor],
        state: dict[str, Tensor],
        need_self_weights: bool = False,
    ) -> tuple[Tensor, list[Tensor], dict[str, Tensor], list[Tensor]]:
        """-> (output `[batch, tgt_len, d_model]`, per layer the cross-attention weights
        `[batch, heads, tgt_len, src_len]` of the new positions, the state, with `need_self_weights` per
        layer the self-attention weights of the new positions `[batch, heads, tgt_len, t + tgt_len]`)."""
        done, new = state["inputs"].size(2), tgt_emb.size(1)  # positions decoded before, and now
        future = torch.ones(new, done + new, dtype=torch.bool, device=tgt_emb.device).triu(diagonal=done + 1)
        x = self.input_layer(tgt_emb) * math.sqrt(self.d_model)  # [batch, tgt_len, d_model]
        x = self.dropout(self.positions(x, offset=done))
        weights, self_weights, inputs = [], [], []
        for i, layer in enumerate(self.layers):
            x, layer_weights, layer_self_weights, layer_inputs = layer(
                x, future, cache["keys"][:, i], cache["values"][:, i], cache["mask"], state["inputs"][:, i],
                need_self_weights,
            )  # fmt: skip
            weights.append(layer_weights)
            inputs.append(layer_inputs)
            if need_self_weights:
                self_weights.append(layer_self_weights)
        output = self.norm(x)  # [batch, tgt_len, d_model]
        return output, weights, {"inputs": torch.stack(inputs, dim=1)}, self_weights
