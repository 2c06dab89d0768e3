#!/usr/bin/env bash
# Data path figures for `make bench`: cache builds (images/s per core, peak
# RSS) by `worker prepare-data` next to torchvision/PIL on the same JPEGs,
# and the training loader's batches/s (BenchmarkLoader).
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=${RESOMAP_BENCH_PHOTOS:-build/bench-photos}
[ -d "$PHOTOS" ] || /usr/bin/python3 dataset/testdata/torchvision_reference.py make "$PHOTOS" 1000
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
echo "== cache build, one decoding goroutine (per core), $PHOTOS"
build/worker prepare-data --data "$PHOTOS" --resolutions 224,512 --data-cache "$cache" --workers 1 2>/dev/null
echo "== cache build, all cores"
rm -rf "${cache:?}"/*
build/worker prepare-data --data "$PHOTOS" --resolutions 224,512 --data-cache "$cache" 2>/dev/null
/usr/bin/python3 bench/pil_reference.py "$PHOTOS" 224 512
CGO_ENABLED=0 go test -run '^$' -bench BenchmarkLoader -benchtime 1x ./dataset
