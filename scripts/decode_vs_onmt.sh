#!/usr/bin/env bash
# Decoding speed beside OpenNMT-py 3.5.1, in one run on one machine: the same model (experiment=bench_tatoeba_rnn
# = ../shared/peers/onmt_rnn_bahdanau.yaml), each trained for BUDGET seconds (default 180) on the same tokenised
# Tatoeba, then the 2,001-sentence valid set decoded greedy and with beam 5 in batches of 64, 2 threads: OpenNMT-py
# with onmt_translate (its own "Total translation time", model loading excluded), ours with the benchmark's decode
# part (the fastest of 3 rounds; with and without the vocabulary shortlist, and with int8 linear layers). BLEU beside each, sacrebleu
# tokenize=none on the shared tokenisation (../shared/peers/bleu.py; ours the same scoring).
# usage: scripts/decode_vs_onmt.sh PROJECT_PYTHON     (from the project's root, on a quiet machine; ~15 min)
set -u
PY=$1; peers=$(cd "$(dirname "$0")/../../shared/peers" && pwd)
export PEERS=${PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/seq2seq-peers} OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
export PEERS_DATA=$PEERS/bench/data PEERS_RUN=$PEERS/onmt/decode-run
BUDGET=${BUDGET:-180}
[[ -x $PEERS/onmt-venv/bin/onmt_train ]] || { mkdir -p "$PEERS" && bash "$peers/install.sh" >"$PEERS/install.log" 2>&1; } || { echo "OpenNMT-py install failed"; exit 1; }
[[ -s $PEERS_DATA/train.fr ]] || python3 "$peers/prep.py" "$peers/../data/tatoeba-eng-fra" "$PEERS_DATA" >/dev/null
rm -rf "$PEERS_RUN"; mkdir -p "$PEERS_RUN"
envsubst < "$peers/onmt_rnn_bahdanau.yaml" > "$PEERS_RUN/cfg.yaml"
"$PEERS/onmt-venv/bin/onmt_build_vocab" -config "$PEERS_RUN/cfg.yaml" -n_sample -1 >/dev/null 2>&1
timeout "$BUDGET" "$PEERS/onmt-venv/bin/onmt_train" -config "$PEERS_RUN/cfg.yaml" >"$PEERS_RUN/out" 2>&1
last=$(ls -t "$PEERS_RUN"/model_step_*.pt | head -1); steps=${last##*_step_}; steps=${steps%.pt}
sentences=$(wc -l < "$PEERS_DATA/valid.en")
for beam in 1 5; do
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$PEERS/onmt-venv/bin/onmt_translate" -model "$last" -src "$PEERS_DATA/valid.en" \
    -output "$PEERS_RUN/hyp$beam.fr" -beam_size $beam -batch_size 64 -max_length 100 -length_penalty none \
    -report_time >"$PEERS_RUN/translate$beam.log" 2>&1
  seconds=$(grep -oE 'Total translation time \(s\): [0-9.]+' "$PEERS_RUN/translate$beam.log" | grep -oE '[0-9.]+$')
  bleu=$("$PEERS/onmt-venv/bin/python" "$peers/bleu.py" "$PEERS_RUN/hyp$beam.fr" "$PEERS_DATA/valid.fr" | cut -f1)
  echo "OpenNMT-py ($steps updates), beam $beam: $(python3 -c "print(round($sentences / $seconds))") sentences/s, BLEU $bleu"
done
out=$(mktemp -d)
"$PY" -m src.bench "parts=[decode]" decode.train_minutes=$((BUDGET / 60)) decode.rounds=3 \
  "decode.searches=[{name: greedy, beam_size: 1},{name: beam 5, beam_size: 5},{name: 'greedy, shortlist', beam_size: 1, shortlist: true},{name: 'beam 5, shortlist', beam_size: 5, shortlist: true},{name: 'greedy, shortlist 50+10', beam_size: 1, shortlist: {frequent: 50, best: 10}},{name: 'beam 5, shortlist 50+10', beam_size: 5, shortlist: {frequent: 50, best: 10}},{name: 'greedy, int8', beam_size: 1, int8: true},{name: 'beam 5, int8', beam_size: 5, int8: true},{name: 'greedy, int8 + shortlist 50+10', beam_size: 1, int8: true, shortlist: {frequent: 50, best: 10}},{name: 'beam 5, int8 + shortlist 50+10', beam_size: 5, int8: true, shortlist: {frequent: 50, best: 10}}]" \
  hydra.run.dir="$out" >"$out/log" 2>&1 || { tail -3 "$out/log"; echo "our bench failed"; exit 1; }
"$PY" - "$out/bench.json" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1]))["decoding"]:
    print(f"ours, {row['search']}: {row['sentences_per_s']:.0f} sentences/s, BLEU {row['bleu']:.2f}")
PY
