#!/usr/bin/env bash
# The speed suite of issue 9, beside bench/noop.sh (no-op against ninja):
#   1. one-file change in a 1000-service repo  vs  that service built cold alone + a no-op
#   2. cold build of 100 services              vs  `docker build` of equivalent Dockerfiles
#                                                  on the same dockerd, sequential and parallel
#   3. layer creation                          vs  `tar -c | gzip -1` and `tar -c | zstd -1`
#      hashing                                 vs  `b3sum`
#   4. peak memory (max RSS) of a cold 1000-service build
# Medians of RUNS runs (hyperfine; the change row alternates change and peer builds
# round by round, bench/change.py); every ratio is measured in the same run, since
# these machines are noisy. Needs scripts/ci-deps.sh (hyperfine, ninja, docker.io, b3sum, zstd).
#
#   SCONE=target/release/scone bench/suite.sh      (default: builds the release binary)
#   RUNS=10 ONLY="change cold layer rss" BENCH_DIR=/tmp/b KEEP=1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-10}
ONLY=${ONLY:-change cold layer rss}
SCONE=${SCONE:-}
log() { printf 'bench: %s\n' "$*" >&2; }
if [[ -z $SCONE ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
    SCONE=$ROOT/target/release/scone
fi
SCONE=$(realpath "$SCONE")
WORK=${BENCH_DIR:-$(mktemp -d -t scone-suite.XXXXXX)}
mkdir -p "$WORK"
[[ ${KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$WORK"' EXIT
(cd "$ROOT" && cargo build --release --quiet --example gen-monorepo)
GEN=$ROOT/target/release/examples/gen-monorepo
export SCONE_CACHE_DIR=$WORK/cache SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$WORK/key.pem
median() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][${2:-0}]['median']*1000, 1))" "$1"; }
ratio() { python3 -c "import sys; print(round(float(sys.argv[1])/float(sys.argv[2]), 2))" "$1" "$2"; }
printf '%-44s %12s %12s %8s\n' "measure" "scone (ms)" "peer (ms)" "ratio" >"$WORK/table.txt"
row() { printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" | tee -a "$WORK/table.txt" >&2; }

if [[ " $ONLY " == *" change "* ]]; then
    log "one-file change, 1000 services"
    rm -rf "$WORK/m1000" && "$GEN" --services 1000 "$WORK/m1000" >/dev/null
    (cd "$WORK/m1000" && "$SCONE" build -f mesh.yml -q 2>/dev/null)
    # The peer: that one service cold, alone (its own tree), plus a no-op of the
    # repo. Change and peer builds alternate round by round (bench/change.py),
    # so a slow spell of the machine lands on both sides of the ratio.
    rm -rf "$WORK/m1" && "$GEN" --services 1 "$WORK/m1" >/dev/null
    read -r change peer _ per_round < <(python3 "$ROOT/bench/change.py" "$SCONE" "$WORK/m1000" "$WORK/m1" "$RUNS" "$WORK/change.json")
    log "one-file change: median of per-round ratios $per_round"
    row "one-file change (1000 svc) vs cold 1 + no-op" "$change" "$peer"
fi

if [[ " $ONLY " == *" rss "* ]]; then
    log "peak memory, cold 1000-service build"
    rm -rf "$WORK/m1000/target"
    /usr/bin/time -f '%M' -o "$WORK/rss.txt" sh -c "cd $WORK/m1000 && $SCONE build -f mesh.yml -q"
    printf '%-44s %12s\n' "peak RSS, cold 1000 services (MB)" "$(( $(cat "$WORK/rss.txt") / 1024 ))" | tee -a "$WORK/table.txt" >&2
fi

if [[ " $ONLY " == *" cold "* ]]; then
    log "cold build of 100 services against docker build"
    rm -rf "$WORK/m100" && "$GEN" --services 100 "$WORK/m100" >/dev/null
    sock=$WORK/docker.sock
    dockerd --host "unix://$sock" --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" \
        --pidfile "$WORK/docker.pid" --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
        >"$WORK/dockerd.log" 2>&1 &
    for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.1; done
    export DOCKER_HOST=unix://$sock DOCKER_BUILDKIT=0
    trap 'kill "$(cat "$WORK/docker.pid")" 2>/dev/null || true; [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"' EXIT
    printf 'FROM scratch\nCOPY . /\n' >"$WORK/m100/base/Dockerfile"
    docker build -q -t mono-base "$WORK/m100/base" >/dev/null
    for d in "$WORK"/m100/services/svc-*; do
        printf 'FROM mono-base\nWORKDIR /app\nCOPY main.cfg /app/\nCOPY lib /app/lib\nENV SERVICE_ID=%s\nENTRYPOINT ["app", "main.cfg"]\n' "$(basename "$d")" >"$d/Dockerfile"
    done
    cat >"$WORK/docker-seq.sh" <<SEQ
for d in $WORK/m100/services/svc-*; do docker build -q --no-cache -t "\$(basename \$d)" "\$d" >/dev/null; done
SEQ
    cat >"$WORK/docker-par.sh" <<PAR
ls -d $WORK/m100/services/svc-* | xargs -P "\$(nproc)" -I{} sh -c 'docker build -q --no-cache -t "\$(basename {})" {} >/dev/null'
PAR
    runs=$(( RUNS < 3 ? RUNS : 3 ))
    hyperfine -N -w 0 -r "$runs" --export-json "$WORK/cold.json" \
        --prepare "rm -rf $WORK/m100/target" "sh -c 'cd $WORK/m100 && $SCONE build -f mesh.yml -q'" \
        "sh $WORK/docker-seq.sh" "sh $WORK/docker-par.sh" >/dev/null
    row "cold 100 svc vs docker build (sequential)" "$(median "$WORK/cold.json" 0)" "$(median "$WORK/cold.json" 1)"
    row "cold 100 svc vs docker build (parallel)" "$(median "$WORK/cold.json" 0)" "$(median "$WORK/cold.json" 2)"
fi

if [[ " $ONLY " == *" layer "* ]]; then
    log "layer creation and hashing on the same files"
    data=$WORK/layerdata
    rm -rf "$data" && mkdir -p "$data/app"
    python3 - "$data/app" <<'PY'
import os, random, sys
random.seed(7)
d = sys.argv[1]
for i in range(64):
    with open(os.path.join(d, f"f{i:02}"), "wb") as f:
        if i % 2:
            f.write(random.randbytes(1 << 20))
        else:
            f.write(("".join(random.choice("abcdefgh \n") for _ in range(1 << 16)) * 16).encode())
PY
    # The entry binary: any ELF the sign step can measure (not part of the timed
    # peer's input, 100 KB beside 64 MB).
    cp "$(type -P true)" "$data/app/entry"
    cat >"$data/service.yml" <<YML
apiVersion: scone/5.8
kind: genImage
build:
  name: layerbench
  kind: binary
  from: scratch
  to: example.com/layerbench:latest
  pwd: /app
  command: /app/app/entry
  copy: [app]
YML
    # The timed builds must be whole builds, not failures (`set -e` stops here).
    (cd "$data" && rm -rf target && "$SCONE" build -f service.yml -q -p layerbench)
    mb=$(du -sm "$data/app" | cut -f1)
    hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/layer.json" \
        --prepare "rm -rf $data/target" \
        "sh -c 'cd $data && $SCONE build -f service.yml -q -p layerbench 2>/dev/null'" \
        "sh -c 'tar -C $data -c app | gzip -1 > /dev/null'" \
        "sh -c 'tar -C $data -c app | zstd -1 -q > /dev/null'" >/dev/null
    row "layer ${mb} MB: scone build vs tar|gzip -1" "$(median "$WORK/layer.json" 0)" "$(median "$WORK/layer.json" 1)"
    row "layer ${mb} MB: scone build vs tar|zstd -1" "$(median "$WORK/layer.json" 0)" "$(median "$WORK/layer.json" 2)"
    # Hashing: a build whose build state is gone (its path table with it) must hash
    # every input and every blob again; b3sum hashes the same files.
    if command -v b3sum >/dev/null; then
        (cd "$data" && rm -rf target && "$SCONE" build -f service.yml -q -p layerbench 2>/dev/null)
        if [[ -d $data/target/.scone/blobs ]]; then
            hmb=$(du -smc "$data/app" "$data/target/.scone/blobs" | tail -1 | cut -f1)
            hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/hash.json" \
                --prepare "rm -f $data/target/.scone/state" \
                "sh -c 'cd $data && $SCONE build -f service.yml -q -p layerbench 2>/dev/null'" \
                "sh -c 'b3sum $data/app/* $data/target/.scone/blobs/*/* > /dev/null'" >/dev/null
            row "hash ${hmb} MB: cold stat cache vs b3sum" "$(median "$WORK/hash.json" 0)" "$(median "$WORK/hash.json" 1)"
        fi
    fi
fi
log "table:"
cat "$WORK/table.txt"
