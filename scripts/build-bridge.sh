#!/usr/bin/env bash
# The one place that compiles the libtorch bridge (torch/csrc). Used by the
# Makefile, the libtorch-2 check (inside its chroot) and the GPU script.
#   build-bridge.sh OUT_DIR [LIBTORCH_DIR]   -> OUT_DIR/libresomap.so
#   BENCH=1 build-bridge.sh ...              -> also OUT_DIR/resomap-bench-cpp
# LIBTORCH_DIR: a PyTorch wheel's torch/ folder or a libtorch zip (default:
# Debian's libtorch-dev). CXXFLAGS_EXTRA=-Werror makes warnings fatal.
set -euo pipefail
out=$1
torch=${2:-}
src=${BRIDGE_SRC:-$(dirname "$0")/../torch/csrc} # BRIDGE_SRC: elsewhere (a chroot)
mkdir -p "$out"
if [ -z "$torch" ]; then
  inc=(-I/usr/include/torch/csrc/api/include)
  link=()
else
  abi=$(python3 -c 'import torch;print(int(torch.compiled_with_cxx11_abi()))' 2>/dev/null || echo 1)
  inc=(-I"$torch/include" -I"$torch/include/torch/csrc/api/include" -D_GLIBCXX_USE_CXX11_ABI="$abi")
  link=(-L"$torch/lib" -Wl,-rpath,"$torch/lib" -Wl,--no-as-needed)
fi
libs=(-ltorch -ltorch_cpu -lc10)
if [ -n "$torch" ] && [ -f "$torch/lib/libtorch_cuda.so" ]; then
  libs+=(-ltorch_cuda -lc10_cuda)
fi
[ -n "$torch" ] && libs+=(-Wl,--as-needed)
# shellcheck disable=SC2086
g++ -O2 -std=c++17 -fPIC -shared -Wall ${CXXFLAGS_EXTRA:-} "${inc[@]}" -o "$out/libresomap.so" "$src/resomap.cpp" "${link[@]}" "${libs[@]}"
if [ "${BENCH:-0}" = 1 ]; then
  g++ -O2 -std=c++17 -Wall -o "$out/resomap-bench-cpp" "$src/bench_main.cpp" -L"$out" -lresomap -Wl,-rpath,'$ORIGIN' "${link[@]}"
fi
