#!/usr/bin/env bash
# GPU benchmark, for a machine with an NVIDIA GPU, g++ and PyTorch (no Go
# needed there: build build/resomap-bench here with `make build` and carry it).
# Builds the bridge against that PyTorch's CUDA libtorch, prints ResoMap's
# images/s for resnet18 and vgg11 at 224 and 512 px in fp32 and
# bf16+channels-last, runs the PyTorch reference (bench/torch_reference.py)
# and prints both side by side. Target: ResoMap >= 0.95x PyTorch in every row.
# With the device tool: `make build` here, then run `bash scripts/gpu-bench.sh`
# there with carry ["build/resomap-bench"]; the JSON rows come back in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-cuda}
mkdir -p "$OUT" build-cuda
TORCH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
bash scripts/build-bridge.sh build-cuda "$TORCH"
RESOMAP_LIB=$PWD/build-cuda/libresomap.so build/resomap-bench --device cuda --json "$OUT/resomap_gpu.json"
python3 bench/torch_reference.py "$OUT/pytorch_gpu.json"
python3 - "$OUT/resomap_gpu.json" "$OUT/pytorch_gpu.json" <<'PY'
import json, sys
ours = {(r["model"], r["res"], r["bf16"]): r for r in json.load(open(sys.argv[1]))}
ref = json.load(open(sys.argv[2]))
print(f'{"model":9} {"res":>4} {"bs":>4} {"mode":>12} {"ResoMap":>10} {"PyTorch":>10} {"ratio":>6}')
worst = 9.9
for r in ref:
    o = ours.get((r["model"], r["res"], r["bf16"]))
    if not o:
        continue
    ratio = o["img_s"] / r["img_s"]
    worst = min(worst, ratio)
    mode = "bf16+CL" if r["bf16"] else "fp32"
    print(f'{r["model"]:9} {r["res"]:>4} {r["bs"]:>4} {mode:>12} {o["img_s"]:>10.1f} {r["img_s"]:>10.1f} {ratio:>6.2f}')
print(f"worst ratio {worst:.2f} (target >= 0.95)")
PY
