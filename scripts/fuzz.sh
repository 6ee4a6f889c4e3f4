#!/usr/bin/env bash
# Fuzzes scone with AFL++ (cargo-afl, on the stable toolchain): builds the targets
# of fuzz/ instrumented, then runs each for SECONDS_PER_TARGET seconds from its
# seeds in fixtures/fuzz/<target>/, one after the other, and prints per target
# the executions, the paths found, and the crashes and hangs saved. A crash or a
# hang fails the run; its inputs are listed: copy each into fixtures/fuzz/<target>/
# (tests/fuzz.rs replays them in the normal suite), then fix the bug.
#
#   scripts/fuzz.sh                    600 s per target (a long run, by hand)
#   scripts/fuzz.sh 25                 what CI runs (.ci/run): 25 s per target
#   scripts/fuzz.sh 600 session oci    only these targets
#
# Installs cargo-afl (pinned) and builds AFL++ when they are missing. Findings and
# queues stay in fuzz/target/afl/<target>/ (not committed). Runs under `nice`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_AFL_VERSION=0.17.1
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(manifest session request oci)

if ! cargo afl --version 2>/dev/null | grep -q "cargo-afl $CARGO_AFL_VERSION"; then
    cargo install cargo-afl --version "$CARGO_AFL_VERSION" --locked
fi
# Builds AFL++ once per toolchain; it refuses (and says so) when that is done.
if ! out=$(cargo afl config --build 2>&1); then
    grep -q "already built" <<<"$out" || { echo "$out"; exit 1; }
fi

# Not --locked: fuzz/Cargo.lock follows scone's dependencies as they change.
(cd fuzz && nice -n 10 cargo afl build --release)

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
    AFL_NO_AFFINITY=1
status=0
summary=()
for target in "${targets[@]}"; do
    out=fuzz/target/afl/$target
    rm -rf "$out"
    mkdir -p "$out"
    echo "=== fuzz $target: ${seconds} s"
    # -V: stop after the time; -t: an input running past 2 s is a hang.
    timeout $((seconds + 120)) nice -n 10 cargo afl fuzz -V "$seconds" -t 2000 \
        -i "fixtures/fuzz/$target" -o "$out" -- "fuzz/target/release/$target" \
        >"$out/afl.log" 2>&1 || { tail -n 30 "$out/afl.log"; status=1; }
    stats=$out/default/fuzzer_stats
    [[ -f $stats ]] || { echo "no stats for $target"; status=1; continue; }
    stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    crashes=$(stat saved_crashes)
    hangs=$(stat saved_hangs)
    summary+=("$(printf '%-9s %6s s %10s execs %7s execs/s %6s paths %3s crashes %3s hangs' \
        "$target" "$(stat run_time)" "$(stat execs_done)" "$(stat execs_per_sec)" \
        "$(stat corpus_count)" "$crashes" "$hangs")")
    if ((crashes + hangs > 0)); then
        status=1
        find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt
    fi
done
echo "=== fuzz summary (AFL++, cargo-afl $CARGO_AFL_VERSION)"
printf '%s\n' "${summary[@]}"
exit "$status"
