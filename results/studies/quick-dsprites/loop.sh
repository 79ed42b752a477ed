#!/usr/bin/env bash
# The quick study's 4 trials with plain nsvae commands, one after another, 2 threads each.
set -e
N=/work/main/.venv/bin/nsvae
cd /work/study
start=$(date +%s.%N)
for seed in 0 1; do
  for model in "nonsyn --alpha 5 --omega 0.9" "beta_vae --beta 4"; do
    name=$(echo $model | cut -d' ' -f1)-seed$seed
    t0=$(date +%s.%N)
    $N train --model $model --seed $seed --steps 2000 --log-every 100 --checkpoint-every 1000 --threads 2 --device cpu --run-dir loop/$name --no-progress
    $N evaluate loop/$name --fast > /dev/null
    $N report loop/$name > /dev/null
    echo "trial $name: $(echo "$(date +%s.%N) - $t0" | bc) s"
  done
done
echo "loop total: $(echo "$(date +%s.%N) - $start" | bc) s"
