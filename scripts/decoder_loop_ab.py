"""A/B: the recurrent decoder's own time loop (cell maths on nn.LSTM's weights) against stepping the standard
nn.LSTM module once per position, in training steps (forward + backward) of the reference model.

    OMP_NUM_THREADS=2 python scripts/decoder_loop_ab.py [--rounds 7] [--steps 20] [overrides ...]

The model is `experiment=bench_tatoeba_rnn` (LSTM 256 + Bahdanau, input feeding) with 10,000 words per side,
on random batches of 64 sentence pairs of 10 + 12 tokens (Tatoeba's mean lengths); the two variants
alternate round by round on the same weights and batches, and the median of the per-round ratios is printed.
Run it on a quiet machine (docs/BENCHMARK.md, "The decoder's time loop").
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from src.models.decoders import RecurrentDecoder, with_attention_state
from src.models.seq2seq import Seq2Seq

CONF = Path(__file__).resolve().parent.parent / "conf"
VOCAB, BATCH, SRC_LEN, TGT_LEN = 10_000, 64, 10, 12


def stepped_input_feeding(self, tgt_emb, cache, state, attn_state):
    """The standard-module alternative: one nn.LSTM call per position, input feeding in between."""
    outputs, weights = [], []
    hidden = state["hidden"].transpose(0, 1).contiguous()
    rnn_state = (hidden, state["cell"].transpose(0, 1).contiguous()) if self.is_lstm else hidden
    input_feed = state["input_feed"]
    for emb_t in tgt_emb.unbind(1):
        rnn_input = torch.cat([emb_t, input_feed], dim=-1).unsqueeze(1)  # [batch, 1, emb + hidden]
        rnn_output, rnn_state = self.rnn(rnn_input, rnn_state)
        output_t, weights_t, attn_state = self._attend(rnn_output, cache, attn_state)
        input_feed = output_t.squeeze(1)
        outputs.append(input_feed)
        weights.append(weights_t)
    output = torch.stack(outputs, dim=1)
    new_state = {
        "hidden": (rnn_state[0] if self.is_lstm else rnn_state).transpose(0, 1),
        "input_feed": input_feed,
    }
    if self.is_lstm:
        new_state["cell"] = rnn_state[1].transpose(0, 1)
    return output, torch.cat(weights, dim=2), with_attention_state(new_state, attn_state)


def train_steps(net: Seq2Seq, batches: list, optimizer: torch.optim.Optimizer) -> float:
    start = time.perf_counter()
    for src, src_len, tgt_in, tgt_out in batches:
        logits = net(src, src_len, tgt_in)[0]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=bench_tatoeba_rnn", *args.overrides])
    torch.manual_seed(0)
    net = instantiate(cfg.model.net)(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    batches = [
        (
            torch.randint(4, VOCAB, (BATCH, SRC_LEN)),
            torch.full((BATCH,), SRC_LEN),
            torch.randint(4, VOCAB, (BATCH, TGT_LEN)),
            torch.randint(4, VOCAB, (BATCH, TGT_LEN)),
        )
        for _ in range(args.steps)
    ]
    own_loop = RecurrentDecoder._forward_input_feeding
    ratios = []
    train_steps(net, batches[:3], optimizer)  # warm-up
    for _ in range(args.rounds):
        RecurrentDecoder._forward_input_feeding = own_loop
        ours = train_steps(net, batches, optimizer)
        RecurrentDecoder._forward_input_feeding = stepped_input_feeding
        stepped = train_steps(net, batches, optimizer)
        ratios.append(stepped / ours)
        print(
            f"own loop {ours / args.steps * 1000:.1f} ms/step, nn.LSTM stepped {stepped / args.steps * 1000:.1f}"
        )
    RecurrentDecoder._forward_input_feeding = own_loop
    print(
        f"threads {torch.get_num_threads()}: stepping nn.LSTM takes x{statistics.median(ratios):.3f} the time "
        f"of the own loop (median of {args.rounds} rounds; min x{min(ratios):.3f}, max x{max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
