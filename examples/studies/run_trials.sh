#!/usr/bin/env bash
# Run every unfinished trial of a study, one process each, without Ray: for a machine where Ray
# is not installed (a borrowed GPU box, say). Extra flags go to each `nsvae sweep --trial` (on a
# GPU: --gpus-per-trial 0.05 keeps the trials on the GPU). MAX_JOBS=N runs at most N at once
# (default: all). Exits 1 unless every trial is finished; rerun it to resume the others.
#   examples/studies/run_trials.sh examples/studies/cpu_study.toml studies/cpu --gpus-per-trial 0.05
#   nsvae study report studies/cpu
set -u
study=$1 out=$2
shift 2
nsvae=${NSVAE:-nsvae}
max_jobs=${MAX_JOBS:-0}
mkdir -p "$out/logs"
while IFS=$'\t' read -r name state; do
  [ "$state" = finished ] && continue
  while [ "$max_jobs" -gt 0 ] && [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n; done
  $nsvae sweep "$study" --out "$out" --trial "$name" "$@" > "$out/logs/$name.log" 2>&1 &
done < <($nsvae sweep "$study" --out "$out" --list)
wait
states=$($nsvae sweep "$study" --out "$out" --list) || exit 1
echo "$states"
! grep -qv $'\tfinished$' <<< "$states"
