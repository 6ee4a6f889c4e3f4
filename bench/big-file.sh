#!/usr/bin/env bash
# A service that ships one big file (a model, a data set): fixtures/hello-world with
# a BIG_MB file of random bytes beside its script (incompressible: the worst case for
# the layer's gzip). Measures, in the same run:
#   1. the service's cold build (copy, layer, image, sign, SBOM, provenance, policy,
#      chart; the base's layer kept in the user cache, as in every other bench) against
#      `tar -c | gzip -6` of the same folder: the least any tool that ships this layer
#      must do (scone's layers are gzip level 6, docs/images.md);
#   2. the build's peak RSS with the file at BIG_MB and at an eighth of it: what a
#      build holds must not grow with the files it ships.
#
#   SCONE=target/release/scone RUNS=5 BIG_MB=512 bench/big-file.sh
#   BENCH_DIR=/tmp/b KEEP=1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
BIG_MB=${BIG_MB:-512}
SCONE=$(realpath "${SCONE:-$ROOT/target/release/scone}")
WORK=${BENCH_DIR:-$(mktemp -d -t scone-big.XXXXXX)}
mkdir -p "$WORK"
[[ ${KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$WORK"' EXIT
log() { printf 'bench: %s\n' "$*" >&2; }
export SCONE_CACHE_DIR=$WORK/cache SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$ROOT/fixtures/sgx/sig1.key.pem
export SCONE_PYTHON_ROOTFS=$WORK/python3
SCONE_DEB_CACHE=${SCONE_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scone/debs} \
    "$ROOT/scripts/python-rootfs.sh" "$SCONE_PYTHON_ROOTFS" >/dev/null

# A service folder with a file of `mb` MB copied beside the script.
service() {
    local dir=$1 mb=$2
    rm -rf "$dir" && cp -r "$ROOT/fixtures/hello-world" "$dir"
    head -c "${mb}M" /dev/urandom >"$dir/model.bin"
    sed -i 's/^    - print_env.py$/    - print_env.py\n    - model.bin/' "$dir/service.yml"
    grep -q 'model.bin' "$dir/service.yml" || { log "could not add model.bin to the manifest"; exit 1; }
}
# Peak RSS (KB) of a cold build in `dir`.
peak() {
    local dir=$1
    rm -rf "$dir/target"
    (cd "$dir" && /usr/bin/time -f '%M' "$SCONE" build -q 2>&1 >/dev/null | tail -1)
}

service "$WORK/big" "$BIG_MB"
service "$WORK/small" $((BIG_MB / 8))
# Once, not timed: the base's layer into the user cache, and a check that it builds.
(cd "$WORK/big" && "$SCONE" build -q 2>/dev/null)
[[ -s $WORK/big/target/enclave/python_hello_user/mrenclave ]] || { log "the service did not build"; exit 1; }

log "cold build with a ${BIG_MB} MB file, against tar | gzip -6 ($RUNS runs each)"
hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/big.json" \
    --prepare "rm -rf $WORK/big/target" \
    "sh -c 'cd $WORK/big && $SCONE build -q 2>/dev/null'" \
    "sh -c 'tar -C $WORK/big --exclude=target -c . | gzip -6 > /dev/null'" >/dev/null
median() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]['median']*1000))" "$1" "$2"; }
scone_ms=$(median "$WORK/big.json" 0)
peer_ms=$(median "$WORK/big.json" 1)
printf '%-52s %10s %10s %7s\n' measure scone peer ratio
printf '%-52s %10s %10s %7s\n' "cold build, ${BIG_MB} MB file (ms)" "$scone_ms" "$peer_ms" \
    "$(python3 -c "print(round($scone_ms / $peer_ms, 2))")"
for dir in small big; do
    mb=$(du -sm --exclude=target "$WORK/$dir" | cut -f1)
    printf '%-52s %10s\n' "peak RSS, cold build, ${mb} MB service (KB)" "$(peak "$WORK/$dir")"
done
