#!/usr/bin/env bash
# The sign step of the hello-world python service (fixtures/hello-world, the python
# base of scripts/python-rootfs.sh) against its floor: the time to SHA-256 the bytes
# it measures (the enclave's .sgxs stream: MRENCLAVE is its SHA-256) once.
#
# Per round, for each scone given (SCONE, and SCONE_BEFORE to compare two builds),
# each on its own copy of hello-world:
#   change  print_env.py edited, then `scone build`: the sign step as a source edit
#           runs it (its memos kept, as after any earlier build);
#   first   the same after removing target/.scone/memo: everything measured anew;
#   floor   SHA-256 of that scone's published enclave.sgxs, in memory (python's
#           hashlib: OpenSSL, with the CPU's SHA extensions where it has them).
# The step's time is the `ms` scone reports for it (--message-format json): its whole
# run, storing and publishing included. Prints the medians of RUNS rounds and the
# ratios to the floor measured in the same rounds.
#
#   SCONE=target/release/scone RUNS=15 bench/sign.sh
#   SCONE=target/release/scone SCONE_BEFORE=/tmp/scone-main RUNS=15 bench/sign.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-15}
SCONE=$(realpath "${SCONE:-$ROOT/target/release/scone}")
WORK=$(mktemp -d -t scone-sign.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export SCONE_CACHE_DIR=${SCONE_CACHE_DIR:-$HOME/.cache/scone} SCONE_CAS_DIR=$WORK/cas
export SCONE_SIGNING_KEY=$ROOT/fixtures/sgx/sig1.key.pem
"$ROOT/scripts/python-rootfs.sh" "$SCONE_CACHE_DIR/rootfs/python3"

names=(after)
bins=("$SCONE")
if [[ -n ${SCONE_BEFORE:-} ]]; then
    names+=(before)
    bins+=("$(realpath "$SCONE_BEFORE")")
fi
for name in "${names[@]}"; do
    mkdir -p "$WORK/$name"
    cp "$ROOT"/fixtures/hello-world/{service.yml,mesh.yml,print_env.py} "$WORK/$name/"
done

# One build; prints the sign step's ms (and checks it ran).
sign_ms() {
    (cd "$1" && "$2" build -f mesh.yml --message-format json 2>/dev/null) | python3 -c '
import json, sys
ms = [m["ms"] for m in map(json.loads, sys.stdin) if m.get("reason") == "step" and m.get("step") == "sign"]
assert ms, "the sign step did not run"
print(ms[0])'
}

floor_ms() {
    python3 - "$1"/target/enclave/*/enclave.sgxs <<'PY'
import hashlib, statistics, sys, time
data = open(sys.argv[1], "rb").read()
times = []
for _ in range(5):
    t = time.perf_counter()
    hashlib.sha256(data).digest()
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1000:.2f} {len(data)}")
PY
}

for i in "${!names[@]}"; do  # warm-up: fill the page cache and each scone's memos
    (cd "$WORK/${names[$i]}" && "${bins[$i]}" build -f mesh.yml -q 2>/dev/null)
done
: >"$WORK/rows"
for round in $(seq "$RUNS"); do
    line=$round
    for i in "${!names[@]}"; do
        dir=$WORK/${names[$i]}
        printf '# round %s\n' "$round" >>"$dir/print_env.py"
        sleep 0.1  # an edit, not racing the build's own stat
        change=$(sign_ms "$dir" "${bins[$i]}")
        rm -rf "$dir/target/.scone/memo"
        printf '# round %s again\n' "$round" >>"$dir/print_env.py"
        sleep 0.1
        first=$(sign_ms "$dir" "${bins[$i]}")
        line="$line ${names[$i]} $change $first"
    done
    # The floor, in the same round (every scone measures the same bytes).
    cmp -s "$WORK/${names[0]}/target/enclave/python_hello_user/enclave.sgxs" \
        "$WORK/${names[-1]}/target/enclave/python_hello_user/enclave.sgxs" \
        || { echo "bench: the scones measured different bytes" >&2; exit 1; }
    read -r floor bytes < <(floor_ms "$WORK/${names[0]}")
    echo "$line $floor $bytes" >>"$WORK/rows"
done
python3 - "$WORK/rows" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
floors = [float(r[-2]) for r in rows]
floor = statistics.median(floors)
print(f"sign step of hello-world (python), medians of {len(rows)} rounds; floor: SHA-256 of "
      f"the {rows[0][-1]}-byte .sgxs once, {floor:.2f} ms")
print(f"{'scone':8} {'change (ms)':>12} {'first (ms)':>11} {'change/floor':>13} {'first/floor':>12}   per-round medians of the ratios")
for col in range(1, len(rows[0]) - 2, 3):
    name = rows[0][col]
    change = [float(r[col + 1]) for r in rows]
    first = [float(r[col + 2]) for r in rows]
    c, f = statistics.median(change), statistics.median(first)
    pc = statistics.median(a / b for a, b in zip(change, floors))
    pf = statistics.median(a / b for a, b in zip(first, floors))
    print(f"{name:8} {c:12.1f} {f:11.1f} {c / floor:13.2f} {f / floor:12.2f}   {pc:.2f} {pf:.2f}")
PY
