#!/usr/bin/env bash
# GPU loader check, for a machine with an NVIDIA GPU, g++ and PyTorch (no Go
# needed there: `make build` here and carry build/resomap-bench). Builds the
# bridge against that PyTorch's CUDA libtorch, makes an image folder of
# 2,000 photo-like 500x375 JPEGs with PIL, builds its 224 px cache (ImageNet
# recipe) and trains resnet18 at 224 in bf16 + channels-last from it, next to
# the same training on one synthetic batch. Target: ratio >= 0.95 (the
# loader never starves the GPU).
# With the device tool: run `bash scripts/gpu-loader.sh` there with carry
# ["build/resomap-bench"]; the figures are printed and written to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-cuda}
PHOTOS=${RESOMAP_BENCH_PHOTOS:-build-cuda/photos}
mkdir -p "$OUT" build-cuda
TORCH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name --format=csv,noheader || true
[ -f build-cuda/libresomap.so ] || bash scripts/build-bridge.sh build-cuda "$TORCH"
[ -d "$PHOTOS" ] || python3 dataset/testdata/torchvision_reference.py make "$PHOTOS" 2000
RESOMAP_LIB=$PWD/build-cuda/libresomap.so build/resomap-bench --device cuda \
  --loader "$PHOTOS" --data-cache build-cuda/data-cache | tee "$OUT/gpu_loader.txt"
