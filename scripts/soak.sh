#!/usr/bin/env bash
# The differential soak (issue 21): the edit generator of tests/differential.rs run for
# thousands of edits, then the kill -9 rounds with more kills. Not part of the default
# test run (scripts/test.sh); run it by hand or nightly. See docs/testing.md.
#
#   scripts/soak.sh                  2000 edits, a random seed
#   scripts/soak.sh 5000 4242        5000 edits from seed 4242
#
# Variables (passed on to the test): SCONE_DIFF_SEQUENCE (edits per sequence, default
# 500 here: long histories), SCONE_DIFF_KINDS (only these kinds), SCONE_DIFF_KILLS
# (default 200 here), SCONE_DIFF_SHRINK=0 (report a mismatch without shrinking it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

edits=${1:-2000}
seed=${2:-$(((RANDOM << 15 | RANDOM) % 1000000))}
export SCONE_DIFF_SEED=$seed
export SCONE_DIFF_EDITS=$edits
export SCONE_DIFF_SEQUENCE=${SCONE_DIFF_SEQUENCE:-500}
export SCONE_DIFF_KILLS=${SCONE_DIFF_KILLS:-200}

echo "soak: seed $seed, $edits edits in sequences of $SCONE_DIFF_SEQUENCE, $SCONE_DIFF_KILLS kills"
start=$(date +%s)
status=0
cargo test --test differential -- --include-ignored --nocapture --test-threads 1 \
    every_build_after_random_edits kill_9_at_random_moments || status=$?
echo "soak: seed $seed, $edits edits, $SCONE_DIFF_KILLS kills: $([ $status = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - start)) s"
exit "$status"
