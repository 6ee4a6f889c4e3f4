#!/usr/bin/env bash
# The no-op build benchmark: how long `scone build` takes when nothing changed, against
# ninja on the user's view of the same tree (the generator's build.ninja: per service one
# stamp over its input files, per mesh one over its Meshfile and the services' stamps),
# on generated monorepos of 10, 100 and 1000 services. Each tool builds each tree once, the script checks that a
# second build does no work, then measures the median wall time of RUNS no-op builds
# (hyperfine when installed, else a `date +%s%N` loop) and prints a table with the
# ratio scone/ninja. See bench/README.md.
#
# Environment (all optional):
#   SIZES="10 100 1000"  service counts     RUNS=10        measured runs per tool and size
#   MESHES=1             meshes per tree    FILES=3        lib/ files per service
#   LINK=manifest        how Meshfiles find manifests: manifest | image | members
#   BASE=inside          where the services' `dir:` base lies: inside the tree, or
#                        outside it (a sibling folder, named in `[paths] allow`)
#   FILE_SIZE=512        bytes per file     ONLY=all       all | ninja | scone
#   SCONE=PATH           the scone binary (default: `cargo build --release`, then
#                        target/release/scone)
#   BENCH_DIR=DIR        where the trees go (default: a temp dir, removed at the end)
#   KEEP=1               keep the default temp dir
#   OUT=FILE             also write the table as tab-separated values to FILE
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${SIZES:-10 100 1000}
RUNS=${RUNS:-10}
MESHES=${MESHES:-1}
LINK=${LINK:-manifest}
BASE=${BASE:-inside}
FILES=${FILES:-3}
FILE_SIZE=${FILE_SIZE:-512}
ONLY=${ONLY:-all}
SCONE=${SCONE:-}
KEEP=${KEEP:-0}
OUT=${OUT:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

case $BASE in
inside | outside) ;;
*) die "BASE must be inside or outside, not '$BASE'" ;;
esac
case $ONLY in
all | ninja | scone) ;;
*) die "ONLY must be all, ninja or scone, not '$ONLY'" ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number, not '$RUNS'"
command -v python3 >/dev/null || die "python3 is needed to compute medians"
if [[ $ONLY != scone ]]; then
    command -v ninja >/dev/null || die "ninja is not installed: run scripts/ci-deps.sh"
fi

if [[ -n ${BENCH_DIR:-} ]]; then
    WORK=$BENCH_DIR
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d -t scone-bench.XXXXXX)
    if [[ $KEEP == 1 ]]; then
        log "keeping the trees in $WORK"
    else
        trap 'rm -rf "$WORK"' EXIT
    fi
fi

log "building the generator (cargo build --example gen-monorepo)"
(cd "$ROOT" && cargo build --quiet --example gen-monorepo)
GEN=$TARGET_DIR/debug/examples/gen-monorepo

if [[ $ONLY != ninja && -z $SCONE ]]; then
    log "building scone (cargo build --release)"
    (cd "$ROOT" && cargo build --quiet --release --bin scone)
    SCONE=$TARGET_DIR/release/scone
fi
if [[ $ONLY != ninja ]]; then
    [[ -x $SCONE ]] || die "no scone binary at $SCONE"
fi

# The median of the numbers on stdin, with two decimals.
median() {
    python3 -c '
import statistics, sys
values = [float(v) for v in sys.stdin.read().split()]
print("%.2f" % statistics.median(values))'
}

# median_ms DIR CMD...: one warm-up, then RUNS runs of CMD inside DIR; prints the
# median wall time in milliseconds. Fails if any run fails.
median_ms() {
    local dir=$1
    shift
    if command -v hyperfine >/dev/null; then
        local json command_line
        json=$(mktemp -p "$WORK" hyperfine.XXXXXX.json)
        command_line=$(printf '%q ' "$@")
        (cd "$dir" && hyperfine --shell=none --warmup 1 --runs "$RUNS" --style none \
            --export-json "$json" -- "$command_line") >/dev/null
        python3 -c '
import json, sys
times = json.load(open(sys.argv[1]))["results"][0]["times"]
print(" ".join(str(t * 1000) for t in times))' "$json" | median
    else
        (
            cd "$dir"
            "$@" >/dev/null 2>&1
            local i start end
            for ((i = 0; i < RUNS; i++)); do
                start=$(date +%s%N)
                "$@" >/dev/null 2>&1
                end=$(date +%s%N)
                echo "$((end - start))"
            done | awk '{ print $1 / 1000000 }'
        ) | median
    fi
}

# Checks that the JSON messages on stdin end with a successful build of 0 steps.
expect_scone_noop() {
    python3 -c '
import json, sys
finished = None
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        message = json.loads(line)
        if message.get("reason") == "build-finished":
            finished = message
if finished is None:
    sys.exit("no build-finished message")
if not finished.get("success") or finished.get("built") != 0:
    sys.exit("not a no-op: %s" % json.dumps(finished, sort_keys=True))'
}

declare -A NINJA_MS SCONE_MS
SCONE_FAILED=0

for n in $SIZES; do
    dir=$WORK/services-$n
    rm -rf "$dir"
    log "generating $n services in $MESHES mesh(es) under $dir"
    mapfile -t meshfiles < <("$GEN" --services "$n" --meshes "$MESHES" --files "$FILES" \
        --file-size "$FILE_SIZE" --link "$LINK" "$dir" 2>/dev/null)
    ((${#meshfiles[@]})) || die "the generator wrote no Meshfile for $n services"
    if [[ $BASE == outside ]]; then
        # The base moves next to the tree; manifests and ninja name it by its
        # absolute path, and scone.toml allows it.
        rm -rf "$dir-base"
        mv "$dir/base" "$dir-base"
        find "$dir" -name '*.yml' -exec sed -i "s|dir:[./]*base|dir:$dir-base|" {} +
        sed -i "s| base/| $dir-base/|g" "$dir/build.ninja"
        printf '\n[paths]\nallow = ["%s"]\n' "$dir-base" >>"$dir/scone.toml"
    fi

    # Both first builds, then both no-ops: a no-op measured right after a cold
    # build of 1,000 services runs while that build's writes go to the disk
    # (up to 1.6x slower here), so neither tool is timed in the other's wake.
    if [[ $ONLY != scone ]]; then
        log "ninja: first build ($n services)"
        ninja -C "$dir" >"$dir.ninja-build.log" || die "ninja failed, see $dir.ninja-build.log"
        ninja -C "$dir" -n | grep -q '^ninja: no work to do' ||
            die "a second ninja build of $dir is not a no-op"
    fi
    fargs=()
    if [[ $ONLY != ninja && $SCONE_FAILED == 0 ]]; then
        if [[ $LINK != members ]]; then
            for meshfile in "${meshfiles[@]}"; do
                fargs+=(-f "$meshfile")
            done
        fi
        log "scone: first build ($n services)"
        if ! (cd "$dir" && "$SCONE" build "${fargs[@]}") >"$dir.scone-build.log" 2>&1; then
            log "error: \`scone build\` failed on the $n-service monorepo; its last lines:"
            tail -n 20 "$dir.scone-build.log" >&2
            SCONE_FAILED=1
        elif ! (cd "$dir" && "$SCONE" build "${fargs[@]}" --message-format json) 2>&1 |
            expect_scone_noop; then
            log "error: a second \`scone build\` of $dir did work; it must be a no-op"
            SCONE_FAILED=1
        fi
    fi
    sync
    if [[ $ONLY != scone ]]; then
        NINJA_MS[$n]=$(median_ms "$dir" ninja)
        log "ninja: no-op median ${NINJA_MS[$n]} ms"
    fi
    if [[ $ONLY != ninja && $SCONE_FAILED == 0 ]]; then
        SCONE_MS[$n]=$(median_ms "$dir" "$SCONE" build -q "${fargs[@]}")
        log "scone: no-op median ${SCONE_MS[$n]} ms"
    fi
done

echo
echo "No-op build, median of $RUNS runs (ms), $MESHES mesh(es), linked by $LINK, base $BASE, $FILES+1 files of $FILE_SIZE B per service"
echo "ninja $(ninja --version 2>/dev/null || echo '-'), $(hyperfine --version 2>/dev/null || echo 'date loop'), $(nproc) cores"
printf '%10s %12s %12s %12s\n' services ninja scone scone/ninja
[[ -z $OUT ]] || printf 'services\tninja_ms\tscone_ms\tratio\n' >"$OUT"
for n in $SIZES; do
    ninja_ms=${NINJA_MS[$n]:--}
    scone_ms=${SCONE_MS[$n]:--}
    ratio=-
    if [[ $ninja_ms != - && $scone_ms != - ]]; then
        ratio=$(python3 -c 'import sys; print("%.1fx" % (float(sys.argv[2]) / float(sys.argv[1])))' \
            "$ninja_ms" "$scone_ms")
    fi
    printf '%10s %12s %12s %12s\n' "$n" "$ninja_ms" "$scone_ms" "$ratio"
    [[ -z $OUT ]] || printf '%s\t%s\t%s\t%s\n' "$n" "$ninja_ms" "$scone_ms" "$ratio" >>"$OUT"
done

if [[ $SCONE_FAILED == 1 ]]; then
    die "the scone half failed (see above): \`scone build\` must build these trees, then do nothing on a second run"
fi
