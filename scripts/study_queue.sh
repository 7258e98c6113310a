#!/usr/bin/env bash
# Run the study's rows one at a time in the background, each resumable (docs/RESULTS.md, "The attention study").
#   . .venv/bin/activate && nohup setsid scripts/study_queue.sh scripts/study_jobs.txt > outputs/study/queue.log 2>&1 &
# Each line of the jobs file: <run name> <training overrides...>. A run goes to outputs/study/<run name>/ (or
# $STUDY_RUNS/<run name>/) and resumes from its last.ckpt when it was cut off (a STUDY_RUNS outside the checkout,
# e.g. ~/study-runs, keeps cut-off runs for a later session on the same machine, whose checkout is new). When it completes, `python -m
# src.study` tests it (beam 5 and greedy, attention against integrated gradients on 50 sentences: needs Captum,
# the `analysis` extra) and archives its row (config, summary, decoded hypotheses; no checkpoint) in
# docs/results/<study>/<run name>/ (or $STUDY_ARCHIVE/<study>/...): multi30k for runs named m30k_*, tatoeba for
# tatoeba_*, other otherwise; commit that folder, so that the row outlives the session. A run archived there is
# skipped; a completed run not archived yet is tested and archived without training it again. One torch thread
# at low priority unless OMP_NUM_THREADS says otherwise (the times the runs record are then not speed figures).
# STUDY_BEAM (5) and STUDY_ATTRIBUTION (50 sentences; 0: none) set the test decoding's beam and attribution.
set -u
cd "$(dirname "$0")/.."
jobs_file=${1:?usage: scripts/study_queue.sh <jobs file>}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
runs=${STUDY_RUNS:-outputs/study}
archive=${STUDY_ARCHIVE:-docs/results}
mkdir -p "$runs"
runs=$(cd "$runs" && pwd)  # absolute: src.train runs with it as hydra.run.dir

archive_of() {  # the archive folder of a run name
  case $1 in
    m30k_*) echo "$archive/multi30k" ;;
    tatoeba_*) echo "$archive/tatoeba" ;;
    *) echo "$archive/other" ;;
  esac
}

while true; do
  job="" overrides=""
  while read -r name rest; do
    [ -z "$name" ] || [ "${name#\#}" != "$name" ] && continue
    if ! grep -qs '"completed"' "$(archive_of "$name")/$name/summary.json"; then job=$name; overrides=$rest; break; fi
  done < "$jobs_file"
  [ -z "$job" ] && { echo "$(date -Is) all jobs completed"; break; }
  dir=$runs/$job
  if ! grep -qs '"completed"' "$dir/summary.json"; then
    resume=()
    [ -f "$dir/checkpoints/last.ckpt" ] && resume=("ckpt_path=$dir/checkpoints/last.ckpt")
    echo "$(date -Is) start $job $overrides ${resume[*]}"
    # shellcheck disable=SC2086  # the overrides are words
    nice -n 19 python -m src.train $overrides "hydra.run.dir=$dir" "~callbacks.progress_bar" "${resume[@]}" \
      > "$runs/$job.out" 2>&1
    rc=$?
    echo "$(date -Is) end $job rc=$rc"
    grep -qs '"completed"' "$dir/summary.json" || { echo "$job did not complete: see $runs/$job.out"; break; }
  fi
  echo "$(date -Is) test and archive $job"
  if ! nice -n 19 python -m src.study "$dir" --beam "${STUDY_BEAM:-5}" --attribution "${STUDY_ATTRIBUTION:-50}" \
    --archive "$(archive_of "$job")" > "$runs/$job.study.out" 2>&1 \
    || ! grep -qs '"completed"' "$(archive_of "$job")/$job/summary.json"; then
    echo "$job: testing or archiving failed (see $runs/$job.study.out); fix that and start the queue again (it" \
      "tests the run again without training it), or delete $dir to train it again"
    break
  fi
done
