#!/usr/bin/env bash
# A cold build of SERVICES python services (fixtures/hello-world's shape: a python3
# interpreter base, one script per service; bench/gen-python-mesh.py) against
# `docker build` of the equivalent Dockerfiles (FROM the same rootfs imported into
# the same dockerd, WORKDIR, COPY the script, ENV, ENTRYPOINT), one after the other
# and JOBS at a time, with the legacy builder and with BuildKit, all measured in the
# same rounds, taking turns.
#
# The python base is scripts/python-rootfs.sh's (Debian's python3.11 and its
# libraries, 26 MB): scone reads it as its `kind: python` default base
# (SCONE_PYTHON_ROOTFS), docker as an image made once from the same folder with
# `docker import` (not timed; nor is scone's layer of it, kept in the user cache).
# Each scone build starts from an empty target/ (renamed away, deleted after the
# round); each docker build runs with --no-cache, after the images of the last run and
# the build cache were removed (docker_clean, not timed). scone builds more than docker
# does: per service the image, and its enclave (measured and signed), SBOM and
# provenance, and per mesh the CAS policy and the Helm chart.
#
#   SCONE=target/release/scone RUNS=3 bench/docker-python.sh
#   SERVICES=100 JOBS=2 BENCH_DIR=/tmp/d KEEP=1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
SERVICES=${SERVICES:-100}
JOBS=${JOBS:-$(nproc)}
SCONE=$(realpath "${SCONE:-$ROOT/target/release/scone}")
WORK=${BENCH_DIR:-$(mktemp -d -t scone-docker.XXXXXX)}
mkdir -p "$WORK/trash"
log() { printf 'bench: %s\n' "$*" >&2; }
export SCONE_CACHE_DIR=$WORK/cache SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$ROOT/fixtures/sgx/sig1.key.pem
export SCONE_PYTHON_ROOTFS=$WORK/python3
SCONE_DEB_CACHE=${SCONE_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scone/debs} \
    "$ROOT/scripts/python-rootfs.sh" "$SCONE_PYTHON_ROOTFS"

sock=$WORK/docker.sock
dockerd --host "unix://$sock" --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" \
    --pidfile "$WORK/docker.pid" --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
    >"$WORK/dockerd.log" 2>&1 &
DOCKERD=$!
cleanup() {
    kill "$DOCKERD" 2>/dev/null || true
    wait "$DOCKERD" 2>/dev/null || true
    [[ ${KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 300); do [[ -S $sock ]] && docker -H "unix://$sock" info >/dev/null 2>&1 && break; sleep 0.1; done
export DOCKER_HOST=unix://$sock DOCKER_BUILDKIT=0  # the scripts below choose their builder

log "python base: $(du -sm "$SCONE_PYTHON_ROOTFS" | cut -f1) MB; docker import (not timed)"
tar -C "$SCONE_PYTHON_ROOTFS" -c . | docker import - scone-python-base >/dev/null
rm -rf "$WORK/py" && python3 "$ROOT/bench/gen-python-mesh.py" "$SERVICES" "$WORK/py" scone-python-base
# Once, not timed: scone's layer of the base (kept in the user cache, as docker keeps
# the imported image), and a check that the services build.
(cd "$WORK/py" && "$SCONE" build -f mesh.yml -q)
(cd "$WORK/py/services/py-0000" && docker build -q -t check-py . >/dev/null)
docker run --rm --network none -e API_PASSWORD=0123456789 check-py | grep -q "service py-0000" \
    || { log "the docker image does not run"; exit 1; }

# The docker peers: the legacy builder (DOCKER_BUILDKIT=0, as the first round of issue 9
# measured) and BuildKit (docker's default builder; the docker.io 20.10 CLI at
# /usr/bin/docker has it built in, a newer CLI needs the buildx plugin), each one
# service after the other and JOBS at a time.
BUILDKIT_DOCKER=${BUILDKIT_DOCKER:-/usr/bin/docker}
for builder in legacy buildkit; do
    if [[ $builder == legacy ]]; then cli="DOCKER_BUILDKIT=0 docker"; else cli="DOCKER_BUILDKIT=1 $BUILDKIT_DOCKER"; fi
    cat >"$WORK/docker-$builder-seq.sh" <<SEQ
for d in $WORK/py/services/py-*; do $cli build -q --no-cache -t "\$(basename \$d)" "\$d" >/dev/null; done
SEQ
    cat >"$WORK/docker-$builder-par.sh" <<PAR
ls -d $WORK/py/services/py-* | xargs -P $JOBS -I{} sh -c '$cli build -q --no-cache -t "\$(basename {})" {} >/dev/null'
PAR
done
# Wall milliseconds of a command; a failure stops the benchmark with its message.
ms() {
    local s=$(date +%s%N)
    "$@" >/dev/null 2>"$WORK/err" || { log "failed: $*"; cat "$WORK/err" >&2; exit 1; }
    echo $(( ($(date +%s%N) - s) / 1000000 ))
}
# Before each docker build (not timed): the images of the last round and every
# layer and build cache entry they left removed; the imported base stays.
docker_clean() {
    docker images -q --filter reference='py-*' | sort -u | xargs -r docker rmi -f >/dev/null
    docker image prune -f >/dev/null
    docker builder prune -af >/dev/null 2>&1 || true
}
: >"$WORK/rounds"
for round in $(seq "$RUNS"); do
    mv "$WORK/py/target" "$WORK/trash/t$round" 2>/dev/null || true
    sync
    line=$(ms sh -c "cd $WORK/py && $SCONE build -f mesh.yml -q")
    for run in legacy-seq legacy-par buildkit-seq buildkit-par; do
        docker_clean && sync
        line="$line $(ms sh "$WORK/docker-$run.sh")"
    done
    rm -rf "$WORK/trash" && mkdir -p "$WORK/trash"
    log "round $round: scone, docker legacy (sequential, $JOBS at a time), BuildKit (same): $line ms (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$line" >>"$WORK/rounds"
done
python3 - "$WORK/rounds" "$SERVICES" "$JOBS" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
med = [statistics.median(r[i] for r in rows) for i in range(5)]
ratio = [statistics.median(r[i] / r[0] for r in rows) for i in range(5)]
print(f"cold build of {sys.argv[2]} python services, medians of {len(rows)} rounds (ratio: median of per-round ratios)")
print(f"| build | ms | × scone's time |")
print(f"|---|---:|---:|")
print(f"| scone build (cold) | {med[0]:.0f} | 1 |")
names = ["one after the other", f"{sys.argv[3]} at a time"]
for i, what in enumerate([f"docker build, legacy builder, {names[0]}", f"docker build, legacy builder, {names[1]}",
                          f"docker build, BuildKit, {names[0]}", f"docker build, BuildKit, {names[1]}"], start=1):
    print(f"| {what} | {med[i]:.0f} | {ratio[i]:.1f} |")
PY
