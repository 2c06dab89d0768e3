#!/usr/bin/env bash
# Installs the system packages ResoMap needs on Debian/Ubuntu, only if missing:
# a C++ compiler and libtorch for the bridge, libturbojpeg for fast JPEG
# decoding, Fashion-MNIST (the default data set), Python's torch/torchvision
# and PIL for the torchvision parity tests, and
# docker-compose to validate docker-compose.yml (that needs no Docker engine).
set -euo pipefail
pkgs=(g++ make libtorch-dev libturbojpeg0 dataset-fashion-mnist python3-torch python3-torchvision python3-numpy python3-pil docker-compose)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
