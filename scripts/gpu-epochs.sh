#!/usr/bin/env bash
# GPU epoch-overhead check, for a machine with an NVIDIA GPU, g++ and PyTorch
# (no Go needed there: `make build` here and carry build/resomap-bench).
# Builds the bridge against that PyTorch's CUDA libtorch, makes an image
# folder of 100,000 photo-like 500x375 JPEGs with PIL (16 processes), and
# trains resnet18 at 224 px (bf16 + channels-last, ImageNet recipe) for
# three epochs through ResoMap's real activities (resident model,
# checkpoints off the critical path), printing each epoch's split of time:
# training, validation, checkpoint wait, restore, other. Target: <= 2%
# outside training and validation. No Temporal server can be carried there
# (its binary is 250 MB), so the activities run in-process; the server's
# own cost per epoch is measured on CPU by BenchmarkEpochOverhead.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-cuda}
PHOTOS=${RESOMAP_BENCH_PHOTOS:-build-cuda/photos-100k}
mkdir -p "$OUT" build-cuda
TORCH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
[ -f build-cuda/libresomap.so ] || bash scripts/build-bridge.sh build-cuda "$TORCH"
if [ ! -d "$PHOTOS" ]; then
  for k in $(seq 0 15); do
    python3 dataset/testdata/torchvision_reference.py make "$PHOTOS.part$k" 6250 &
  done
  wait
  for k in $(seq 0 15); do
    for cls in a b; do
      mkdir -p "$PHOTOS/$cls"
      for f in "$PHOTOS.part$k/$cls"/*.jpg; do mv "$f" "$PHOTOS/$cls/$k-$(basename "$f")"; done
    done
    rm -rf "$PHOTOS.part$k"
  done
fi
RESOMAP_LIB=$PWD/build-cuda/libresomap.so build/resomap-bench --device cuda --epochs 3 --batch 256 \
  --data "$PHOTOS" --data-cache build-cuda/data-cache | tee "$OUT/gpu_epochs.txt"
