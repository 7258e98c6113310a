"""The naive baseline: the reference model trained and decoded one sentence at a time, token by token.

This is how the classic PyTorch tutorial ("NLP From Scratch: Translation with a Sequence to Sequence
Network and Attention", S. Robertson) works: `EncoderRNN` calls its RNN once per source token,
`AttnDecoderRNN` once per target token, each token's loss is added to a running sum, and the optimizer
steps after every sentence. No batching, no padding, every step recomputes what it needs.

The modules have the reference model's architecture and sizes (bidirectional LSTM encoder, LSTM decoder
with input feeding and Bahdanau attention, bridge, output layer over the whole target vocabulary), so a
speed ratio compares the implementation, not the model. `NaiveSeq2Seq.from_seq2seq` copies the weights of
a trained `Seq2Seq`: naive greedy decoding then gives the same translations as the batched search.
"""

import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.data.vocab import BOS_ID, EOS_ID
from src.decoding.lengths import max_lengths
from src.models.seq2seq import Seq2Seq


class EncoderRNN(nn.Module):
    """A bidirectional LSTM run as two LSTMs stepped one token at a time."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.forward_rnn = nn.LSTM(embedding_size, hidden_size // 2)
        self.backward_rnn = nn.LSTM(embedding_size, hidden_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: list[int]) -> tuple[Tensor, Tensor]:
        """src ids -> (memory `[src_len, hidden]`, final `[1, hidden]`)."""
        forward_states = self._run(self.forward_rnn, src)
        backward_states = self._run(self.backward_rnn, src[::-1])[::-1]
        memory = torch.cat([torch.cat(forward_states), torch.cat(backward_states)], dim=1)
        final = torch.cat([forward_states[-1], backward_states[0]], dim=1)
        return self.dropout(memory), final

    def _run(self, rnn: nn.LSTM, tokens: list[int]) -> list[Tensor]:
        """The outputs `[1, hidden / 2]`, one token at a time."""
        outputs, state = [], None
        for token in tokens:
            embedded = self.dropout(self.embedding(torch.tensor([token]))).view(1, 1, -1)
            output, state = rnn(embedded, state)
            outputs.append(output[0])
        return outputs


class AttnDecoderRNN(nn.Module):
    """One target token per call: LSTM over [embedding; previous output], Bahdanau attention over the
    memory (keys recomputed every call), attentional output, log-softmax over the vocabulary."""

    def __init__(
        self, vocab_size: int, embedding_size: int, hidden_size: int, attention_size: int, dropout: float
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.LSTM(embedding_size + hidden_size, hidden_size)
        self.bridge = nn.Linear(hidden_size, hidden_size)
        self.query_layer = nn.Linear(hidden_size, attention_size, bias=False)
        self.key_layer = nn.Linear(hidden_size, attention_size, bias=False)
        self.energy_layer = nn.Linear(attention_size, 1, bias=False)
        self.attn_combine = nn.Linear(2 * hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def init_state(self, final: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(h, c `[1, 1, hidden]`, the previous output `[1, hidden]`) before the first token."""
        hidden = torch.tanh(self.bridge(final)).view(1, 1, -1)
        return hidden, torch.zeros_like(hidden), torch.zeros_like(final)

    def forward(
        self, token: int, state: tuple[Tensor, Tensor, Tensor], memory: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """-> (log-probabilities `[1, vocab]`, the next state); memory `[src_len, hidden]`."""
        hidden, cell, feed = state
        embedded = self.dropout(self.embedding(torch.tensor([token])))  # [1, emb]
        output, (hidden, cell) = self.rnn(torch.cat([embedded, feed], dim=1).view(1, 1, -1), (hidden, cell))
        query = self.query_layer(output[0])  # [1, attention]
        scores = self.energy_layer(torch.tanh(query + self.key_layer(memory))).view(1, -1)  # [1, src_len]
        context = F.softmax(scores, dim=1) @ memory  # [1, hidden]
        feed = torch.tanh(self.attn_combine(self.dropout(torch.cat([output[0], context], dim=1))))
        return F.log_softmax(self.out(feed), dim=1), (hidden, cell, feed)


class NaiveSeq2Seq(nn.Module):
    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embedding_size: int = 256,
        hidden_size: int = 256,
        attention_size: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = EncoderRNN(src_vocab_size, embedding_size, hidden_size, dropout)
        self.decoder = AttnDecoderRNN(tgt_vocab_size, embedding_size, hidden_size, attention_size, dropout)

    @classmethod
    def from_seq2seq(cls, net: Seq2Seq) -> "NaiveSeq2Seq":
        """The same weights as `net`, which must be the reference architecture (1-layer bidirectional
        LSTM encoder, 1-layer LSTM decoder with input feeding and Bahdanau attention)."""
        naive = cls(
            net.src_embedding.num_embeddings,
            net.tgt_embedding.num_embeddings,
            net.src_embedding.embedding_dim,
            net.decoder.output_size,
            net.decoder.attention.key_layer.out_features,
        )
        weights = {
            "encoder.embedding.weight": net.src_embedding.weight,
            "decoder.embedding.weight": net.tgt_embedding.weight,
            "decoder.out.weight": net.output_layer.weight,
            "decoder.out.bias": net.output_layer.bias,
        }
        for name, value in net.encoder.rnn.named_parameters():  # weight_ih_l0, weight_ih_l0_reverse ...
            direction = "backward_rnn" if name.endswith("_reverse") else "forward_rnn"
            weights[f"encoder.{direction}.{name.removesuffix('_reverse')}"] = value
        decoder = net.decoder
        for prefix, module in [
            ("rnn", decoder.rnn),
            ("bridge", decoder.bridge),
            ("attn_combine", decoder.output_layer),
            ("", decoder.attention),
        ]:
            for name, value in module.named_parameters():
                weights[f"decoder.{prefix}.{name}" if prefix else f"decoder.{name}"] = value
        naive.load_state_dict({name: value.detach().clone() for name, value in weights.items()})
        return naive


@dataclass
class NaiveResult:
    seconds: float
    sentences: int
    target_tokens: int  # real target tokens, <eos> included (training only)


def train_for(
    model: NaiveSeq2Seq, examples: list[tuple[list[int], list[int]]], seconds: float, clip: float, seed: int
) -> NaiveResult:
    """Train one sentence per update, in a seeded random order, for about `seconds` (Adam 1e-3, gradient
    norm clipped to `clip`); teacher forcing, as in the reference setup."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = random.Random(seed).sample(range(len(examples)), len(examples))
    sentences = tokens = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and sentences < len(order):
        src, tgt = examples[order[sentences]]
        optimizer.zero_grad()
        memory, final = model.encoder(src)
        state = model.decoder.init_state(final)
        loss = torch.zeros(())
        for previous, target in zip([BOS_ID, *tgt], [*tgt, EOS_ID], strict=True):
            log_probs, state = model.decoder(previous, state, memory)
            loss = loss + F.nll_loss(log_probs, torch.tensor([target]))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        loss.item()  # the tutorial reads the loss of every sentence for its printout
        sentences += 1
        tokens += len(tgt) + 1
    return NaiveResult(time.perf_counter() - start, sentences, tokens)


@torch.inference_mode()
def translate(model: NaiveSeq2Seq, src: list[int], max_len: int) -> list[int]:
    """Greedy search for one sentence: at most `max_len` tokens, then <eos> (as `greedy_search`)."""
    memory, final = model.encoder(src)
    state = model.decoder.init_state(final)
    tokens, token = [], BOS_ID
    for _ in range(max_len):
        log_probs, state = model.decoder(token, state, memory)
        token = int(log_probs.argmax())
        if token == EOS_ID:
            break
        tokens.append(token)
    return tokens


def translate_for(
    model: NaiveSeq2Seq, sources: list[list[int]], seconds: float, max_len_a: float, max_len_b: int, seed: int
) -> tuple[NaiveResult, dict[int, list[int]]]:
    """Translate sentences in a seeded random order (the files are roughly sorted by length) for about
    `seconds`; returns the timing and {sentence index: output ids}."""
    model.eval()
    order = random.Random(seed).sample(range(len(sources)), len(sources))
    outputs: dict[int, list[int]] = {}
    start = time.perf_counter()
    for i in order:
        if time.perf_counter() - start >= seconds:
            break
        [limit] = max_lengths(torch.tensor([len(sources[i])]), max_len_a, max_len_b)
        outputs[i] = translate(model, sources[i], limit)
    return NaiveResult(time.perf_counter() - start, len(outputs), 0), outputs
