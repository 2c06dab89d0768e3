#!/usr/bin/env bash
# ResoMap against the plain PyTorch script a user would write for the same
# job (bench/torch_train_reference.py): Fashion-MNIST's first
# $RESOMAP_BENCH_TRAIN images, the same recipe, two threads. Prints each
# job's training throughput ratio, its slowest epoch against the first, and
# both best accuracies with the 95% Welch interval of their difference.
# The two sides alternate which runs first, seed by seed.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${RESOMAP_BENCH_SEEDS:-5}             # accuracy seeds (resnet18 at 32 px, 3 and 5 epochs)
SPEED_SEEDS=${RESOMAP_BENCH_SPEED_SEEDS:-2} # throughput-only jobs: resnet18 at 64 px, smallcnn at 32 px
TRAIN=${RESOMAP_BENCH_TRAIN:-5120}
# Every model of the families since ResNet (the registry's, from
# resomap-bench), for speed only: one epoch of a few images each (they are
# slow on 2 cores), validated on 256.
NEW_MODELS=${RESOMAP_BENCH_NEW_MODELS-$(build/resomap-bench --list-new-models)}
NEW_TRAIN=${RESOMAP_BENCH_NEW_TRAIN:-512}
out=${RESOMAP_BENCH_OUT:-build/bench-train.jsonl}
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
mkdir -p "$(dirname "$out")"
: >"$out"
run() { # MODEL RES EPOCHS SEED [TRAIN VAL]
  local train=${5:-$TRAIN} val=${6:-2000}
  local ours=(build/resomap-bench --job "$1,$2,$3,$train,$4,$val" --data-cache "$cache")
  local script=(/usr/bin/python3 bench/torch_train_reference.py --model "$1" --res "$2" --epochs "$3" --seed "$4" --train "$train" --val "$val")
  if (($4 % 2)); then
    "${ours[@]}" 2>/dev/null >>"$out"
    "${script[@]}" >>"$out"
  else
    "${script[@]}" >>"$out"
    "${ours[@]}" 2>/dev/null >>"$out"
  fi
  echo "bench-train: $1@$2 $3 epochs seed $4 done" >&2
}
if [ -n "$NEW_MODELS" ]; then
  # The data cache at 32 px is built here, untimed: a one-epoch job would
  # otherwise count it against whichever model comes first.
  build/resomap-bench --job "smallcnn,32,1,$NEW_TRAIN,1,256" --data-cache "$cache" >/dev/null 2>&1
fi
for model in $NEW_MODELS; do
  run "$model" 32 1 1 "$NEW_TRAIN" 256
done
for seed in $(seq 1 "$SEEDS"); do
  run resnet18 32 3 "$seed"
  run resnet18 32 5 "$seed"
done
for seed in $(seq 1 "$SPEED_SEEDS"); do
  run resnet18 64 3 "$seed"
  run smallcnn 32 3 "$seed"
done
echo "== ResoMap against bench/torch_train_reference.py, $TRAIN Fashion-MNIST images ($NEW_TRAIN for the one-epoch rows), 2 threads ($out)"
build/resomap-bench --compare "$out"
