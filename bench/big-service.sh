#!/usr/bin/env bash
# Services that ship more than a script: fixtures/hello-world with, beside its script,
#   big:  one BIG_MB file of random bytes (a model, a data set; incompressible: the
#         worst case for the layer's gzip);
#   many: a folder of FILES small python files in packages of 100 (a vendored
#         site-packages or node_modules).
# For each, in the same run:
#   1. the service's cold build (copy, layer, image, sign, SBOM, provenance, policy,
#      chart; the base's layer kept in the user cache, as in every other bench)
#      against `tar -c | gzip -6` of the same folder: the least any tool that ships
#      this layer must do (scone's layers are gzip level 6, docs/images.md);
#   2. (many) the build after one of the files changed, against the same peer: the
#      layer is made again whole;
#   3. the cold build's peak RSS, and (big) that of a file an eighth the size: what a
#      build holds must not grow with what it ships.
# Each cold build starts from an empty target/ (the last one renamed away and deleted
# after the run: ext4 is slow to make inodes right after many were deleted).
#
#   SCONE=target/release/scone RUNS=5 BIG_MB=512 FILES=20000 bench/big-service.sh
#   BENCH_DIR=/tmp/b KEEP=1 ONLY="big many"
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
BIG_MB=${BIG_MB:-512}
FILES=${FILES:-20000}
ONLY=${ONLY:-big many}
SCONE=$(realpath "${SCONE:-$ROOT/target/release/scone}")
WORK=${BENCH_DIR:-$(mktemp -d -t scone-big.XXXXXX)}
mkdir -p "$WORK/trash"
cleanup() {
    rm -rf "$WORK/trash"
    [[ ${KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf 'bench: %s\n' "$*" >&2; }
export SCONE_CACHE_DIR=$WORK/cache SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$ROOT/fixtures/sgx/sig1.key.pem
export SCONE_PYTHON_ROOTFS=$WORK/python3
SCONE_DEB_CACHE=${SCONE_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scone/debs} \
    "$ROOT/scripts/python-rootfs.sh" "$SCONE_PYTHON_ROOTFS" >/dev/null

# A service folder whose manifest copies `what` beside the script.
service() {
    local dir=$1 what=$2
    rm -rf "$dir" && cp -r "$ROOT/fixtures/hello-world" "$dir"
    sed -i "s/^    - print_env.py\$/    - print_env.py\n    - $what/" "$dir/service.yml"
    grep -q -- "- $what" "$dir/service.yml" || { log "could not add $what to the manifest"; exit 1; }
}
big() {
    service "$1" model.bin
    head -c "${2}M" /dev/urandom >"$1/model.bin"
}
many() {
    service "$1" lib
    python3 - "$1/lib" "$FILES" <<'PY'
import os, random, sys
random.seed(7)
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"pkg{i // 100:04}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"mod{i % 100:02}.py"), "w") as f:
        f.write(f"# module {i}\n" + "".join(f"x{j} = {random.randrange(10**9)}\n" for j in range(20)))
PY
}
away() { [[ ! -e $1/target ]] || mv "$1/target" "$WORK/trash/$RANDOM$RANDOM"; }
# Peak RSS (KB) of a cold build in `dir`.
peak() {
    away "$1"
    (cd "$1" && /usr/bin/time -f '%M' "$SCONE" build -q 2>&1 >/dev/null | tail -1)
}
median() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]['median']*1000))" "$1" "$2"; }
row() { printf '%-56s %10s %10s %7s\n' "$1" "$2" "$3" "$4"; }
table=$WORK/table.txt
row measure scone peer ratio >"$table"
# Cold builds of `dir` against tar | gzip -6 of it, RUNS each.
cold() {
    local dir=$1 what=$2
    (cd "$dir" && "$SCONE" build -q 2>/dev/null)
    [[ -s $dir/target/enclave/python_hello_user/mrenclave ]] || { log "$dir did not build"; exit 1; }
    log "cold build, $what, against tar | gzip -6 ($RUNS runs each)"
    hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/cold.json" \
        --prepare "sh -c '[ ! -e $dir/target ] || mv $dir/target $WORK/trash/\$\$'" \
        "sh -c 'cd $dir && $SCONE build -q 2>/dev/null'" \
        "sh -c 'tar -C $dir --exclude=target -c . | gzip -6 > /dev/null'" >/dev/null
    local s p
    s=$(median "$WORK/cold.json" 0) p=$(median "$WORK/cold.json" 1)
    row "cold build, $what (ms)" "$s" "$p" "$(python3 -c "print(round($s / $p, 2))")" | tee -a "$table" >&2
}

if [[ " $ONLY " == *" big "* ]]; then
    big "$WORK/big" "$BIG_MB"
    cold "$WORK/big" "one ${BIG_MB} MB file"
    big "$WORK/small" $((BIG_MB / 8))
    for dir in small big; do
        mb=$(du -sm --exclude=target "$WORK/$dir" | cut -f1)
        row "peak RSS, cold build, a ${mb} MB service (KB)" "$(peak "$WORK/$dir")" "" "" | tee -a "$table" >&2
    done
fi
if [[ " $ONLY " == *" many "* ]]; then
    many "$WORK/many"
    cold "$WORK/many" "${FILES} files"
    row "peak RSS, cold build, ${FILES} files (KB)" "$(peak "$WORK/many")" "" "" | tee -a "$table" >&2
    log "one file of ${FILES} changed, against tar | gzip -6 ($RUNS runs each)"
    edit=$WORK/many/lib/pkg0000/mod00.py
    hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/change.json" \
        --prepare "sh -c 'echo \"y = \$\$\" >> $edit'" \
        "sh -c 'cd $WORK/many && $SCONE build -q 2>/dev/null'" \
        "sh -c 'tar -C $WORK/many --exclude=target -c . | gzip -6 > /dev/null'" >/dev/null
    s=$(median "$WORK/change.json" 0) p=$(median "$WORK/change.json" 1)
    row "one of ${FILES} files changed (ms)" "$s" "$p" "$(python3 -c "print(round($s / $p, 2))")" | tee -a "$table" >&2
fi
log "table:"
cat "$table"
