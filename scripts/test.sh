#!/usr/bin/env bash
# The project's test command: installs what the tests need (scripts/ci-deps.sh), then
# builds every target and runs the whole suite with plain `cargo test`. The tests start
# their own registry and dockerd instances, so nothing is started here.
#
#   scripts/test.sh                      doc tests, then every test of every target
#   scripts/test.sh --test generator     extra arguments go to `cargo test --all-targets`
#   scripts/test.sh -- --test-threads=1
#
# `cargo test --all-targets` runs no doc tests, so they run first (without extra
# arguments). With --no-fail-fast every test binary runs, and the exit status is still
# non-zero if any test failed. cargo's last "test result" line belongs to whichever
# target ran last (often an example with no tests), so the run ends with one line adding
# up all of them: "summary: N passed, N failed, N skipped" (skipped = ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/ci-deps.sh
cargo build --all-targets

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
if (($# == 0)); then
    cargo test --doc 2>&1 | tee -a "$results" || status=$?
fi
cargo test --all-targets --no-fail-fast "$@" 2>&1 | tee -a "$results" || status=$?

awk '
    /^test result: / {
        for (i = 1; i < NF; i++) {
            word = $(i + 1)
            sub(/[;,]$/, "", word)
            if (word == "passed") passed += $i
            if (word == "failed") failed += $i
            if (word == "ignored") ignored += $i
        }
    }
    END { printf "summary: %d passed, %d failed, %d skipped\n", passed, failed, ignored }
' "$results"
exit "$status"
