#!/usr/bin/env bash
# Run the study's rows one at a time in the background, each resumable (docs/RESULTS.md, "The attention study").
#   . .venv/bin/activate && nohup setsid scripts/study_queue.sh scripts/study_jobs.txt > outputs/study/queue.log 2>&1 &
# Each line of the jobs file: <run name> <training overrides...>. A run goes to outputs/study/<run name>/; it is
# done when its summary.json says "completed" (there, or in its archive docs/results/*/<run name>/, which
# `python -m src.study ... --archive` writes), and resumes from its last.ckpt when it was cut off. One torch
# thread at low priority, so that the machine stays usable (the times it records are then not speed figures).
set -u
cd "$(dirname "$0")/.."
jobs_file=${1:?usage: scripts/study_queue.sh <jobs file>}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p outputs/study
while true; do
  job="" overrides=""
  while read -r name rest; do
    [ -z "$name" ] || [ "${name#\#}" != "$name" ] && continue
    if ! grep -qs '"completed"' "outputs/study/$name/summary.json" docs/results/*/"$name"/summary.json; then
      job=$name; overrides=$rest; break
    fi
  done < "$jobs_file"
  [ -z "$job" ] && { echo "$(date -Is) all jobs completed"; break; }
  dir=$PWD/outputs/study/$job
  resume=()
  [ -f "$dir/checkpoints/last.ckpt" ] && resume=("ckpt_path=$dir/checkpoints/last.ckpt")
  echo "$(date -Is) start $job $overrides ${resume[*]}"
  # shellcheck disable=SC2086  # the overrides are words
  nice -n 19 python -m src.train $overrides "hydra.run.dir=$dir" "~callbacks.progress_bar" "${resume[@]}" \
    > "outputs/study/$job.out" 2>&1
  rc=$?
  echo "$(date -Is) end $job rc=$rc"
  grep -qs '"completed"' "$dir/summary.json" || { echo "$job did not complete: see outputs/study/$job.out"; break; }
done
