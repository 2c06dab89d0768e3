#!/usr/bin/env bash
# The main job: a real default sweep on this machine. Starts the Temporal dev
# server (SQLite under state/, Web UI on :8233) and a worker unless they are
# already up, then runs `starter --sweep default --wait`. Both stay up after
# the sweep so the Web UI can be browsed; `make stop` ends them.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${RESOMAP_STATE:-state}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac # an absolute path from here on
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
TEMPORAL="$GOBIN/temporal"
mkdir -p "$STATE"
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-localhost:7233}
export RESOMAP_STORE=${RESOMAP_STORE:-file://$STATE/store}
export RESOMAP_LIB=${RESOMAP_LIB:-$PWD/build/libresomap.so}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! "$TEMPORAL" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "starting the Temporal dev server (log: $STATE/temporal.log)"
  read -ra sa <<<"$(build/starter dev-server-flags)" # the search attributes, as the workflows define them
  nohup "$TEMPORAL" server start-dev --db-filename "$STATE/temporal.db" --ip 127.0.0.1 --port 7233 --ui-port 8233 \
    --log-level warn "${sa[@]}" >"$STATE/temporal.log" 2>&1 &
  echo $! >"$STATE/temporal.pid"
  for _ in $(seq 1 120); do
    "$TEMPORAL" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$TEMPORAL" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null || { echo "Temporal dev server did not start: see $STATE/temporal.log" >&2; exit 1; }
fi
if ! alive "$STATE/worker.pid"; then
  echo "starting a worker (log: $STATE/worker.log)"
  nohup build/worker --store "$RESOMAP_STORE" >"$STATE/worker.log" 2>&1 &
  echo $! >"$STATE/worker.pid"
fi
build/starter --sweep "${SWEEP:-default}" --store "$RESOMAP_STORE" --wait "$@"
echo
echo "The Temporal dev server and the worker keep running for the Web UI (http://localhost:8233); stop them with: make stop"
