#!/usr/bin/env bash
# The no-op of issue 21 on several shapes of monorepo (bench/noop.sh each), then the
# one-file change and the peak RSS (bench/suite.sh): the build-state rows of
# docs/performance.md. Tables go to OUT (default: a temp folder, printed at the end).
#
#   SCONE=target/release/scone RUNS=15 bench/shapes.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-15}
SIZES=${SIZES:-100 1000}
OUT=${OUT:-$(mktemp -d -t scone-shapes.XXXXXX)}
mkdir -p "$OUT"
if [[ -z ${SCONE:-} ]]; then
    (cd "$ROOT" && cargo build --quiet --release --bin scone)
    SCONE=$ROOT/target/release/scone
fi
export SCONE RUNS SIZES
uptime >"$OUT/load.txt"
for shape in "manifest inside 1" "manifest outside 1" "members inside 4" "image inside 1"; do
    read -r link base meshes <<<"$shape"
    # OUT is this script's folder; noop.sh would take it for its TSV file.
    OUT= LINK=$link BASE=$base MESHES=$meshes "$ROOT/bench/noop.sh" >"$OUT/noop-$link-$base-$meshes.txt"
done
ONLY="change rss" "$ROOT/bench/suite.sh" >"$OUT/suite.txt"
uptime >>"$OUT/load.txt"
cat "$OUT"/noop-*.txt "$OUT/suite.txt" "$OUT/load.txt"
echo "tables in $OUT"
