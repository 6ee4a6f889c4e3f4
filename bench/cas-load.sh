#!/usr/bin/env bash
# The load test of `scone cas serve` (tests/cas_load.rs) at SCALE times the counts
# CI runs (800 silent + 200 idle TLS connections, 100 oversized-secret requests, 50
# real sessions): prints what was answered and the server's peak RSS (VmHWM).
# Loopback only; bounded counts. Needs an open-files limit above 1,000 x SCALE.
#
#   bench/cas-load.sh        SCALE 4: 4,000 idle connections, 400 attacks, 200 sessions
#   bench/cas-load.sh 10
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scale=${1:-4}
ulimit -n "$(ulimit -Hn)"
SCONE_CAS_LOAD_SCALE=$scale cargo test --test cas_load -- --nocapture 2>&1 |
    grep -E "^cas load|^test result|panicked"
