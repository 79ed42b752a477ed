#!/usr/bin/env bash
# Run every unfinished trial of a study at once, one process each, without Ray: for a machine
# where Ray is not installed (a borrowed GPU box, say). Extra flags go to each `nsvae sweep --trial`
# (on a GPU: --gpus-per-trial 0.05 keeps the trials on the GPU). Rerun it to resume.
#   examples/studies/run_trials.sh examples/studies/cpu_study.toml studies/cpu --gpus-per-trial 0.05
#   nsvae study report studies/cpu
set -u
study=$1 out=$2
shift 2
nsvae=${NSVAE:-nsvae}
while IFS=$'\t' read -r name state; do
  if [ "$state" != finished ]; then
    mkdir -p "$out/logs"
    $nsvae sweep "$study" --out "$out" --trial "$name" "$@" > "$out/logs/$name.log" 2>&1 &
  fi
done < <($nsvae sweep "$study" --out "$out" --list)
wait
$nsvae sweep "$study" --out "$out" --list
