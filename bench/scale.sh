#!/usr/bin/env bash
# Issue 26's scale rows: cold build, no-op and one-file change of generated monorepos of
# SIZES services (default 100 1000 10000; one mesh, 3 files of 512 B per service, base
# inside the tree), all sizes measured round by round (bench/scale.py), with the cost
# per service, its growth from size to size and the peak RSS of each cold build. Then,
# on the largest tree, the chart and the policy it built: `helm lint --strict` and
# `helm template` of target/helm, and the session uploaded to the embedded local CAS
# (`scone apply`, which parses and stores it as CAS does).
#
#   SCONE=target/release/scone bench/scale.sh
#   SIZES="100 1000" ROUNDS=3 NOOPS=5 BENCH_DIR=/tmp/s KEEP=1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${SIZES:-100 1000 10000}
ROUNDS=${ROUNDS:-3}
NOOPS=${NOOPS:-5}
if [[ -z ${SCONE:-} ]]; then
    (cd "$ROOT" && cargo build --release --quiet --bin scone)
    SCONE=$ROOT/target/release/scone
fi
SCONE=$(realpath "$SCONE")
WORK=${BENCH_DIR:-$(mktemp -d -t scone-scale.XXXXXX)}
mkdir -p "$WORK"
[[ ${KEEP:-0} == 1 || -n ${BENCH_DIR:-} ]] || trap 'rm -rf "$WORK"' EXIT
log() { printf 'bench: %s\n' "$*" >&2; }
(cd "$ROOT" && cargo build --release --quiet --example gen-monorepo)
GEN=$ROOT/target/release/examples/gen-monorepo
export SCONE_CACHE_DIR=$WORK/cache SCONE_CAS_DIR=$WORK/cas SCONE_SIGNING_KEY=$WORK/key.pem

trees=()
for n in $SIZES; do
    if [[ ! -f $WORK/m$n/mesh.yml ]]; then
        log "generating $n services"
        rm -rf "$WORK/m$n" && "$GEN" --services "$n" "$WORK/m$n" >/dev/null
    fi
    trees+=("$WORK/m$n")
done
[[ -f $WORK/m1/mesh.yml ]] || "$GEN" --services 1 "$WORK/m1" >/dev/null
uptime >"$WORK/load.txt"
python3 "$ROOT/bench/scale.py" "$SCONE" "$ROUNDS" "$NOOPS" "$WORK/scale.json" "$WORK/m1" "${trees[@]}" \
    | tee "$WORK/table.md"
uptime >>"$WORK/load.txt"

big=${trees[-1]}
n=$(ls "$big/services" | wc -l)
log "the chart and policy of $n services"
if command -v helm >/dev/null; then
    export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data
    helm lint --strict "$big/target/helm" >"$WORK/helm-lint.txt"
    docs=$(helm template bench "$big/target/helm" | grep -c '^kind: Deployment$')
    echo "helm lint --strict: ok; helm template: $docs Deployments ($(du -sh "$big/target/helm" | cut -f1) chart)"
else
    echo "helm is not installed (scripts/ci-deps.sh): chart not checked"
fi
policy=$(ls "$big"/target/policy/*.yaml)
echo "policy: $(stat -c %s "$policy") bytes, $(grep -c '^  - name:' "$policy" || true) services"
if (cd "$big" && "$SCONE" apply -f mesh.yml -q) 2>"$WORK/apply.txt"; then
    echo "scone apply (embedded local CAS): session accepted"
else
    echo "scone apply (embedded local CAS) FAILED: $(tail -3 "$WORK/apply.txt")"
fi
cat "$WORK/load.txt"
