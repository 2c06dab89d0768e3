#!/usr/bin/env bash
# The one thing to run on a GPU machine (NVIDIA GPU, g++ and PyTorch; no Go
# needed there). Build here first (`make build`) and carry build/resomap-bench.
# Within RESOMAP_GPU_BUDGET_S seconds (default 480, install included) it:
#   1. builds the bridge against that machine's PyTorch (CUDA libtorch);
#   2. compares ResoMap with PyTorch (bench/torch_reference.py): resnet18
#      and vgg11 at 224 and 512 px, mobilenet_v3_large, efficientnet_b0,
#      convnext_tiny, regnet_y_400mf and vit_b_16 at 224, fp32 and bf16 +
#      channels-last
#      (target: ResoMap >= 0.95x in every row);
#   3. checks the loader: resnet18 at 224 from a 2,000-photo folder's cache
#      against one synthetic batch (target: ratio >= 0.95);
#   4. prints the per-epoch time split of resnet18 at 224 through the real
#      activities on RESOMAP_GPU_EPOCH_PHOTOS photos (default 20,000;
#      target: <= 2% outside training and validation).
# A step that would not fit in what is left of the budget is skipped, and
# said so. Every figure goes to $OUT/gpu-check.txt (and the JSON rows
# beside it); a summary table ends the output.
# With the device tool: run `bash scripts/gpu-check.sh` with carry
# ["build/resomap-bench"] and timeout_s 540.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing run"
  exit 0
fi
BUDGET=${RESOMAP_GPU_BUDGET_S:-480}
PHOTOS_N=${RESOMAP_GPU_EPOCH_PHOTOS:-20000}
OUT=${OUT:-build-cuda}
mkdir -p "$OUT" build-cuda
LOG="$OUT/gpu-check.txt"
: >"$LOG"
START=$SECONDS
SUMMARY=()
left() { echo $((BUDGET - (SECONDS - START))); }
# step NAME ESTIMATE_S FIGURE_REGEX COMMAND...: runs COMMAND if ESTIMATE_S
# fits in what is left, bounded by what is left; records its status, time
# and the last line of its output matching FIGURE_REGEX.
step() {
  local name=$1 need=$2 figure=$3; shift 3
  local l; l=$(left)
  if [ "$l" -lt "$need" ]; then
    SUMMARY+=("$(printf '%-10s %-8s %6s  %s' "$name" skipped - "needs about ${need}s, ${l}s left")")
    echo "== $name: skipped (needs about ${need}s, ${l}s left)" | tee -a "$LOG"
    return 0
  fi
  echo "== $name" | tee -a "$LOG"
  local t0=$SECONDS status=ok
  timeout "$l" "$@" 2>&1 | tee -a "$LOG" "$OUT/$name.txt"
  case ${PIPESTATUS[0]} in 0) ;; 124) status=timeout ;; *) status=failed ;; esac
  local fig; fig=$(grep -E "$figure" "$OUT/$name.txt" | tail -n 1)
  SUMMARY+=("$(printf '%-10s %-8s %5ss  %s' "$name" "$status" $((SECONDS - t0)) "${fig:0:110}")")
}
[ -x build/resomap-bench ] || { echo "gpu-check: build/resomap-bench missing: run 'make build' here and carry it" | tee -a "$LOG"; exit 1; }
TORCH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } | tee -a "$LOG"
export RESOMAP_LIB=$PWD/build-cuda/libresomap.so
step bridge 120 'libresomap|real' bash scripts/build-bridge.sh build-cuda "$TORCH"
[ -f "$RESOMAP_LIB" ] || { printf '%s\n' "${SUMMARY[@]}"; echo "gpu-check: no bridge, nothing else can run"; exit 1; }
compare() {
  build/resomap-bench --device cuda --json "$OUT/resomap_gpu.json" &&
    python3 bench/torch_reference.py "$OUT/pytorch_gpu.json" >/dev/null &&
    python3 - "$OUT/resomap_gpu.json" "$OUT/pytorch_gpu.json" <<'PY'
import json, sys
ours = {(r["model"], r["res"], r["bf16"]): r for r in json.load(open(sys.argv[1]))}
ref = json.load(open(sys.argv[2]))
print(f'{"model":9} {"res":>4} {"bs":>4} {"mode":>8} {"ResoMap":>9} {"PyTorch":>9} {"ratio":>6}')
worst = 9.9
for r in ref:
    o = ours.get((r["model"], r["res"], r["bf16"]))
    if not o:
        continue
    ratio = o["img_s"] / r["img_s"]
    worst = min(worst, ratio)
    mode = "bf16+CL" if r["bf16"] else "fp32"
    print(f'{r["model"]:9} {r["res"]:>4} {r["bs"]:>4} {mode:>8} {o["img_s"]:>9.1f} {r["img_s"]:>9.1f} {ratio:>6.2f}')
print(f"worst ratio ResoMap/PyTorch {worst:.2f} (target >= 0.95)")
PY
}
photos() { [ -d "$1" ] || python3 dataset/testdata/torchvision_reference.py make "$1" "$2" >/dev/null; }
loader() {
  photos build-cuda/photos 2000 &&
    build/resomap-bench --device cuda --loader build-cuda/photos --data-cache build-cuda/data-cache
}
epochs() {
  local dir=build-cuda/photos-epochs per=$((PHOTOS_N / 16))
  if [ ! -d "$dir" ]; then
    for k in $(seq 0 15); do photos "$dir.part$k" "$per" & done
    wait
    for k in $(seq 0 15); do
      for cls in a b; do
        mkdir -p "$dir/$cls"
        for f in "$dir.part$k/$cls"/*.jpg; do mv "$f" "$dir/$cls/$k-$(basename "$f")"; done
      done
      rm -rf "$dir.part$k"
    done
  fi
  build/resomap-bench --device cuda --epochs 3 --batch 256 --data "$dir" --data-cache build-cuda/data-cache
}
step compare 240 'worst ratio' compare
step loader 60 'ratio' loader
step epochs 150 'per epoch' epochs
{ echo; echo "gpu-check summary (${BUDGET}s budget, $((SECONDS - START))s used; figures in $LOG)"
  printf '%-10s %-8s %6s  %s\n' step status time figure
  printf '%s\n' "${SUMMARY[@]}"; } | tee -a "$LOG"
