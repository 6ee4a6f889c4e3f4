#!/usr/bin/env bash
# Save-to-running latency of `scone dev` on hello-world: starts `scone dev --native`,
# saves print_env.py RUNS times, waits for the new output each time, and prints the
# median of the "from save to running" times scone dev reports (and of the wall time
# from the save to the new output line, measured here).
#   SCONE=target/release/scone RUNS=10 bench/dev-latency.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-10}
SCONE=$(realpath "${SCONE:-$ROOT/target/release/scone}")
WORK=$(mktemp -d -t scone-dev.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
export SCONE_CACHE_DIR=${SCONE_CACHE_DIR:-$HOME/.cache/scone} SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$WORK/key.pem
mkdir -p "$WORK/ws"  # the watched workspace; CAS and key stay outside it
"$ROOT/scripts/python-rootfs.sh" "$SCONE_CACHE_DIR/rootfs/python3"
cp "$ROOT"/fixtures/hello-world/{service.yml,mesh.yml,print_env.py} "$WORK/ws/"
cd "$WORK/ws"
"$SCONE" dev -f mesh.yml --native >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 600); do grep -q "Watching" "$WORK/err" 2>/dev/null && break; sleep 0.1; done
walls=()
for i in $(seq "$RUNS"); do
    printf 'print("run %s")\n' "$i" >print_env.py
    start=$(date +%s%N)
    until grep -q "^run $i\$" "$WORK/out"; do sleep 0.005; done
    walls+=($(( ($(date +%s%N) - start) / 1000000 )))
    sleep 0.5
done
python3 - "$WORK/err" "${walls[@]}" <<'PY'
import re, statistics, sys
cycles = [float(m) for m in re.findall(r"([0-9.]+)s from save to running", open(sys.argv[1]).read())][1:]
walls = [int(x) for x in sys.argv[2:]]
print(f"scone dev reported, median of {len(cycles)}: {statistics.median(cycles)*1000:.0f} ms")
print(f"save to new output line, median of {len(walls)}: {statistics.median(walls)} ms")
PY
