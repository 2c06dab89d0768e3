#!/usr/bin/env bash
# The bridge must compile and behave the same on libtorch 1.13 (Debian 12, the
# default) and 2.x. Debian 13 ships libtorch 2.6, so this builds a Debian 13
# chroot once (cached under $RESOMAP_CHROOT, ~2 GB, about 2 minutes), compiles
# the bridge there with -Werror and runs the trainer's whole test suite (the
# Go test binary is built here; CGO_ENABLED=0 makes it run anywhere) against
# it, including bit-exact resume and torchvision 0.21 parity. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${RESOMAP_CHROOT:-/var/cache/resomap/trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "check-libtorch2: needs root (debootstrap, chroot)" >&2; exit 1; }

if [ ! -f "$ROOT/.resomap-ready" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  echo "check-libtorch2: building a Debian 13 chroot in $ROOT"
  for d in proc dev; do mountpoint -q "$ROOT/$d" && umount -l "$ROOT/$d"; done
  rm -rf --one-file-system "$ROOT"
  mkdir -p "$ROOT"
  debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
  echo "deb $MIRROR trixie main" >"$ROOT/etc/apt/sources.list"
  chroot "$ROOT" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    g++ libtorch-dev libturbojpeg0 python3-torch python3-torchvision python3-numpy python3-pil dataset-fashion-mnist util-linux >/dev/null'
  touch "$ROOT/.resomap-ready"
fi
# Chroots built before JPEG decoding moved to libturbojpeg get it now (the
# PyTorch parity tests decode the same JPEGs with PIL's libjpeg-turbo).
if ! chroot "$ROOT" dpkg -s libturbojpeg0 >/dev/null 2>&1; then
  chroot "$ROOT" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libturbojpeg0 python3-pil >/dev/null'
fi

mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" || true; done; }
trap cleanup EXIT
for d in proc dev; do
  if ! mountpoint -q "$ROOT/$d"; then
    mount --bind "/$d" "$ROOT/$d"
    mounted+=("$ROOT/$d")
  fi
done

src="$ROOT/resomap"
mkdir -p "$src/trainer"
# Rebuild the bridge only when its sources changed.
sum=$(cat torch/csrc/resomap.cpp torch/csrc/resomap.h scripts/build-bridge.sh | sha256sum | cut -c1-16)
if [ "$(cat "$src/libresomap.sum" 2>/dev/null)" != "$sum" ]; then
  rm -rf "$src/csrc" && cp -r torch/csrc "$src/csrc" && cp scripts/build-bridge.sh "$src/"
  chroot "$ROOT" env BRIDGE_SRC=/resomap/csrc CXXFLAGS_EXTRA=-Werror bash /resomap/build-bridge.sh /resomap
  echo "$sum" >"$src/libresomap.sum"
fi
echo "check-libtorch2: trainer tests against libtorch $(chroot "$ROOT" dpkg-query -W -f '${Version}' libtorch-dev)"

CGO_ENABLED=0 go test -c -o "$src/trainer.test" ./trainer
rm -rf "$src/trainer/testdata" "$src/examples" && cp -r trainer/testdata "$src/trainer/testdata" && cp -r examples "$src/examples"
chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp RESOMAP_LIB=/resomap/libresomap.so \
  sh -c 'cd /resomap/trainer && ../trainer.test -test.count=1 -test.timeout 40m -test.v 2>&1' |
  grep -E '^(--- |PASS|FAIL|ok|panic)|_test.go:'
