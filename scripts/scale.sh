#!/usr/bin/env bash
# make scale: what a training costs the orchestration as the sweep grows,
# on a real Temporal dev server. N tiny trainings (smallcnn at 8..27 px,
# 64 images, 2 epochs; 2 workers x 4 slots, max_parallel 8), so that
# orchestration is nearly all there is. The sweep starts with 5 seeds and
# grows by 5 seeds at a time (starter add, sent at once), so every 100
# trainings in its order are the same mix of resolutions: the rate in the
# first and the last 10% compares like with like. Prints those rates, the
# sweep's largest history event over all its runs, history events and
# store objects per training, and how long `starter status` and the report
# take. SCALE_N (default 2000, a multiple of 100 up to 2000) trainings; a
# fresh server and store under state/scale-N (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${SCALE_N:-2000}
RESOLUTIONS=20 CHUNK=5
SEEDS=$(( N / RESOLUTIONS ))
if (( SEEDS < CHUNK || SEEDS > 100 || SEEDS % CHUNK != 0 )); then
  echo "scale: SCALE_N=$N: want a multiple of 100 from 100 to 2000" >&2
  exit 2
fi
STATE="$PWD/state/scale-$N"
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
TEMPORAL="$GOBIN/temporal"
PORT=${SCALE_PORT:-7244}
export TEMPORAL_ADDRESS=localhost:$PORT
export RESOMAP_STORE=file://$STATE/store
export RESOMAP_LIB=${RESOMAP_LIB:-$PWD/build/libresomap.so}
export RESOMAP_DATA_CACHE=$STATE/cache
PY=/usr/bin/python3

rm -rf "$STATE"
mkdir -p "$STATE"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The data caches are built before the clock starts: the first trainings
# would otherwise pay for all 20 (and the rate compare cold with warm).
build/worker prepare-data --data fashion-mnist --resolutions "$(seq -s, 8 $((8 + RESOLUTIONS - 1)))" >"$STATE/prepare.log" 2>&1

read -ra sa <<<"$(build/starter dev-server-flags)"
"$TEMPORAL" server start-dev --db-filename "$STATE/temporal.db" --ip 127.0.0.1 --port "$PORT" --headless \
  --log-level warn "${sa[@]}" >"$STATE/temporal.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  "$TEMPORAL" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break
  sleep 0.5
done
for w in 1 2; do
  build/worker --store "$RESOMAP_STORE" --concurrency 4 --threads 1 >"$STATE/worker$w.log" 2>&1 &
  pids+=($!)
done

{
  echo "name: scale-$N"
  echo "models: [smallcnn]"
  echo "resolutions: [$(seq -s, 8 $((8 + RESOLUTIONS - 1)))]"
  echo "seeds: [$(seq -s, 1 "$CHUNK")]"
  echo "epochs: 2"
  echo "data: fashion-mnist"
  echo "train_limit: 64"
  echo "val_limit: 64"
  echo "test_resolutions: [8]"
  echo "max_parallel: 8"
  echo "hyper: {batch_size: 32, optimizer: sgd, lr: 0.05, momentum: 0.9, schedule: cosine}"
} >"$STATE/scale.yaml"

echo "scale: $N trainings ($RESOLUTIONS resolutions x $SEEDS seeds) on a dev server at $TEMPORAL_ADDRESS, state in $STATE"
start=$(date +%s.%N)
build/starter --sweep "$STATE/scale.yaml" --store "$RESOMAP_STORE" >"$STATE/starter.log" 2>&1
for ((s = CHUNK + 1; s <= SEEDS; s += CHUNK)); do
  build/starter add --sweep "scale-$N" --seeds "$(seq -s, "$s" $((s + CHUNK - 1)))" --store "$RESOMAP_STORE" >>"$STATE/starter.log" 2>&1
done
# Wait for the end without adding work of our own (no progress queries).
# (Read whole: grep -q ending the pipe early would fail it under pipefail.)
sweep_status() {
  "$TEMPORAL" workflow describe -w "sweep-scale-$N" -o json |
    $PY -c 'import json, sys; print(json.load(sys.stdin)["workflowExecutionInfo"]["status"])'
}
misses=0
while st=$(sweep_status 2>/dev/null || true); [ "$st" = WORKFLOW_EXECUTION_STATUS_RUNNING ] || { [ -z "$st" ] && ((++misses < 30)); }; do
  sleep 10
done
[ "$(sweep_status)" = WORKFLOW_EXECUTION_STATUS_COMPLETED ] && rc=0 || rc=1
end=$(date +%s.%N)
tail -5 "$STATE/starter.log"
[ "$rc" = 0 ] || { echo "scale: the sweep did not complete (exit $rc): see $STATE/starter.log" >&2; exit 1; }

t0=$(date +%s.%N); build/starter status --sweep "scale-$N" --store "$RESOMAP_STORE" >/dev/null; t1=$(date +%s.%N)
build/starter report --sweep "scale-$N" --store "$RESOMAP_STORE" --out "$STATE/report" >/dev/null; t2=$(date +%s.%N)

# Every run of the sweep's workflow (continue-as-new), its events and payloads.
"$TEMPORAL" workflow list --query "WorkflowId='sweep-scale-$N'" -o json >"$STATE/runs.json"
$PY - "$STATE/runs.json" >"$STATE/run_ids" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1])):
    print(r["execution"]["runId"])
EOF
: >"$STATE/events.jsonl"
while read -r run; do
  "$TEMPORAL" workflow show -w "sweep-scale-$N" -r "$run" -o json >>"$STATE/events.jsonl"
  echo >>"$STATE/events.jsonl"
done <"$STATE/run_ids"

$PY - "$STATE" "$N" "$start" "$end" "$t0" "$t1" "$t2" <<'EOF'
import glob, json, os, sys
from datetime import datetime
state, n = sys.argv[1], int(sys.argv[2])
start, end, t0, t1, t2 = map(float, sys.argv[3:8])
# Trainings by when they ended (their outcomes in the store).
ends = []
for f in glob.glob(os.path.join(state, "store", "sweeps", "scale-%d" % n, "outcomes", "*.json")):
    o = json.load(open(f))
    ts = o.get("finished_at") or o.get("FinishedAt")
    if ts:
        ends.append(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
ends.sort()
k = max(2, len(ends) // 10)
def rate(xs):
    span = xs[-1] - xs[0]
    return (len(xs) - 1) / span * 60 if span > 0 else float("nan")
first, last = rate(ends[:k]), rate(ends[-k:])
# History: events and the largest event (its JSON size) over every run.
def stored_size(e):
    """The event's size, its payloads as the JSON shows them (decoded, by
    default; base64 data, if shown, counted as its bytes)."""
    size = len(json.dumps(e))
    def walk(v):
        nonlocal size
        if isinstance(v, dict):
            if "data" in v and "metadata" in v and isinstance(v["data"], str):
                size -= len(v["data"]) - len(v["data"]) * 3 // 4
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(e)
    return size
events, largest, runs = 0, 0, 0
dec = json.JSONDecoder()
text = open(os.path.join(state, "events.jsonl")).read()
i = 0
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    h, i = dec.raw_decode(text, i)
    runs += 1
    for e in h.get("events", []):
        events += 1
        largest = max(largest, stored_size(e))
objects = sizes = 0
for root, _, files in os.walk(os.path.join(state, "store")):
    for f in files:
        objects += 1
        sizes += os.path.getsize(os.path.join(root, f))
print("scale: %d trainings in %.0f s: %.1f trainings/min overall; first 10%%: %.1f/min, last 10%%: %.1f/min (last/first %.2f)"
      % (len(ends), end - start, len(ends) / (end - start) * 60, first, last, last / first))
print("scale: sweep history: %d runs, %d events (%.2f per training), largest event %d bytes"
      % (runs, events, events / max(1, len(ends)), largest))
print("scale: store: %d objects (%.1f per training), %.1f MB (%.0f KB per training)"
      % (objects, objects / max(1, len(ends)), sizes / 1e6, sizes / 1e3 / max(1, len(ends))))
print("scale: starter status %.2f s, report %.2f s" % (t1 - t0, t2 - t1))
EOF
