#!/usr/bin/env bash
# The remote cache (issues 10 and 26): how long a fresh checkout takes to fill from
# a filled remote cache, against a cold local build of the same repo, measured
# round by round in turns, for each size, backend and added latency.
#
#   1. folder A builds a generated monorepo with --remote-cache-write (straight to
#      the server);
#   2. folder B (same bytes, empty target/ and empty user cache before every run)
#      builds with --remote-cache: everything is downloaded, nothing built;
#   3. the peer: folder B built cold with --no-remote-cache, same preparation.
# Backends: nginx WebDAV (Bazel HTTP cache protocol) and docker-registry (oci://),
# both on 127.0.0.1. LATENCIES: for each value > 0, B reaches the server through
# bench/latency-proxy.py, which adds that many ms to every request (the script
# starts and stops it). RUNS rounds, the two builds taking turns (bench/alternate.py):
# medians, and the median of the per-round ratios. Needs scripts/ci-deps.sh.
# Before each run target/ and the user cache are renamed away (deleted once a
# measurement is done, not timed: ext4 makes files created right after a mass
# delete slow, which would add the same seconds to both sides).
#
#   SCONE=target/release/scone bench/remote.sh      (default: builds the release binary)
#   SIZES="100 1000" LATENCIES="0 20 50" BACKENDS="http oci" RUNS=5 FILES=3 FILE_SIZE=512
#   BENCH_DIR=/tmp/r KEEP=1 GEN=target/release/examples/gen-monorepo
# Tiny services (the default) are the worst case for a remote: building them locally
# costs little more than downloading them. FILE_SIZE=1000000 makes each step real work.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
SIZES=${SIZES:-${SERVICES:-100}}
LATENCIES=${LATENCIES:-0}
FILES=${FILES:-3}
FILE_SIZE=${FILE_SIZE:-512}
BACKENDS=${BACKENDS:-http oci}
SCONE=${SCONE:-}
log() { printf 'bench: %s\n' "$*" >&2; }
if [[ -z $SCONE ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
    SCONE=$ROOT/target/release/scone
fi
SCONE=$(realpath "$SCONE")
WORK=${BENCH_DIR:-$(mktemp -d -t scone-remote.XXXXXX)}
mkdir -p "$WORK"
chmod a+x "$WORK"  # nginx workers may run as another user
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ ${KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
GEN=${GEN:-}
if [[ -z $GEN ]]; then
    (cd "$ROOT" && cargo build --release --quiet --example gen-monorepo)
    GEN=$ROOT/target/release/examples/gen-monorepo
fi
export SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$ROOT/fixtures/sgx/sig1.key.pem
[[ -f $SCONE_SIGNING_KEY ]] || { log "no signing key at $SCONE_SIGNING_KEY"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
median() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]['median']*1000, 1))" "$1" "$2"; }
ratio() { python3 -c "import sys; print(round(float(sys.argv[1])/float(sys.argv[2]), 2))" "$1" "$2"; }

start_http() {
    local dir=$WORK/nginx port
    port=$(free_port)
    mkdir -p "$dir/data" && chmod 0777 "$dir" "$dir/data"
    cat >"$dir/nginx.conf" <<CONF
daemon off; worker_processes 2; error_log $dir/error.log warn; pid $dir/nginx.pid;
events { worker_connections 512; }
http { access_log off; client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  server { listen 127.0.0.1:$port; root $dir/data; client_max_body_size 0;
    location / { dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw group:rw all:rw; } } }
CONF
    nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stderr.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" || { log "nginx did not start"; cat "$dir/error.log" >&2; exit 1; }
    URL="http://127.0.0.1:$port/cache"
}

start_oci() {
    local dir=$WORK/registry port
    port=$(free_port)
    mkdir -p "$dir"
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$dir/data" "$port" >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" || { log "docker-registry did not start"; cat "$dir/registry.log" >&2; exit 1; }
    URL="oci://127.0.0.1:$port/scone-cache"
}

proxy() {  # proxy UPSTREAM_PORT DELAY_MS: sets PROXY_PORT and PROXY_PID
    PROXY_PORT=$(free_port)
    python3 "$ROOT/bench/latency-proxy.py" "$PROXY_PORT" "$1" "$2" >"$WORK/proxy-$PROXY_PORT.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_port "$PROXY_PORT" || { log "the latency proxy did not start"; exit 1; }
}

mkdir -p "$WORK/trash"
printf '%-8s %-6s %8s %12s %12s %8s %10s %s\n' services backend "+ms" "remote (ms)" "cold (ms)" ratio "per round" load >"$WORK/table.txt"
for backend in $BACKENDS; do
    "start_$backend"
    direct=$URL
    port=${URL#*://127.0.0.1:}
    port=${port%%/*}
    for services in $SIZES; do
        log "$backend, $services services: filling $direct from folder A"
        a=$WORK/a-$backend-$services
        b=$WORK/b-$backend-$services
        rm -rf "$a" "$b"
        for d in "$a" "$b"; do
            "$GEN" --services "$services" --files "$FILES" --file-size "$FILE_SIZE" "$d" >/dev/null 2>&1
        done
        (cd "$a" && SCONE_CACHE_DIR=$WORK/cache-a-$backend \
            "$SCONE" build -f mesh.yml -q --remote-cache "$direct" --remote-cache-write)
        cache=$WORK/cache-b-$backend
        for ms in $LATENCIES; do
            url=$direct
            if [[ $ms != 0 ]]; then
                proxy "$port" "$ms"
                url=${direct/127.0.0.1:$port/127.0.0.1:$PROXY_PORT}
            fi
            # Check once that B really is all remote hits before timing it.
            rm -rf "$b/target" "$cache"
            (cd "$b" && SCONE_CACHE_DIR=$cache "$SCONE" build -f mesh.yml --message-format json --remote-cache "$url") \
                | tail -n 1 | python3 -c 'import json,sys; m=json.load(sys.stdin); assert m["built"]==0 and m["remote"]>0, m; print("bench: B:", m["remote"], "remote hits, 0 built", file=sys.stderr)'
            log "$backend, $services services, +$ms ms: folder B from the remote against a cold local build (load: $(cut -d' ' -f1-3 /proc/loadavg))"
            json=$WORK/$backend-$services-$ms.json
            read -r remote cold ratio per_round < <(python3 "$ROOT/bench/alternate.py" "$RUNS" \
                "mv $b/target $WORK/trash/t\$\$ 2>/dev/null; mv $cache $WORK/trash/c\$\$ 2>/dev/null; true" \
                "cd $b && SCONE_CACHE_DIR=$cache $SCONE build -f mesh.yml -q --remote-cache $url" \
                "cd $b && SCONE_CACHE_DIR=$cache $SCONE build -f mesh.yml -q --no-remote-cache" "$json")
            rm -rf "$WORK/trash" && mkdir -p "$WORK/trash"
            printf '%-8s %-6s %8s %12s %12s %8s %10s %s\n' "$services" "$backend" "$ms" "$remote" "$cold" "$ratio" "$per_round" "$(cut -d' ' -f1 /proc/loadavg)" \
                | tee -a "$WORK/table.txt" >&2
            if [[ $ms != 0 ]]; then
                kill "$PROXY_PID" 2>/dev/null || true
            fi
        done
    done
done
cat "$WORK/table.txt"
