#!/usr/bin/env bash
# Remakes every figure of docs/ (and the README) from the project's own commands:
#
#   graph-hello-world.svg   scone graph --format svg of fixtures/hello-world
#   graph-multi.svg         scone graph --format svg of fixtures/multi
#   architecture.svg        cargo run --example architecture (scone's modules, data flow)
#   timings-cold.png        the --timings page of a cold build of a generated monorepo
#                           (examples/gen-monorepo), screenshot by headless Chromium
#   timings-one-change.png  the same after one file of one service changed
#
#   scripts/figures.sh [OUT_DIR]         (default: docs/figures)
#
# Environment: SCONE_FIGURES_SERVICES (200) services in the monorepo. The builds run with
# -j 2 on a debug build of scone, in a temp folder with their own cache, CAS and config
# folders, the public test signing key (fixtures/sgx) and provenance key (fixtures/attest). The SVGs are the same on every
# run; the screenshots show that run's times. On a fresh machine it installs Debian's
# chromium and fonts-dejavu-core (--no-install-recommends) when missing, which needs
# root. tests/figures.rs runs it and checks it makes every figure docs/ and the README
# show, and that the SVGs committed are the ones it makes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

out=${1:-docs/figures}
services=${SCONE_FIGURES_SERVICES:-200}
log() { printf 'figures: %s\n' "$*" >&2; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
[[ "$(dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null || true)" == "install ok installed" ]] ||
    missing+=(fonts-dejavu-core)
if ((${#missing[@]})); then
    [[ $EUID == 0 ]] || { log "missing ${missing[*]}: run as root, or scripts/ci-deps.sh"; exit 1; }
    log "apt-get install ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

log "cargo build (scone, examples gen-monorepo and architecture)"
cargo build --bin scone --example gen-monorepo --example architecture >&2
target=${CARGO_TARGET_DIR:-$root/target}
scone=$target/debug/scone
examples=$target/debug/examples

work=$(mktemp -d "${TMPDIR:-/tmp}/scone-figures.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)

# A screenshot of a page: a fresh profile, no network of its own (every host name mapped
# to nothing), one device pixel per CSS pixel.
screenshot() {
    local page=$1 png=$2
    rm -f "$png"
    chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-extensions --host-resolver-rules="MAP * ~NOTFOUND" --hide-scrollbars \
        --force-device-scale-factor=1 --user-data-dir="$work/profile-$(basename "$png")" \
        --window-size=1400,1050 --screenshot="$png" "file://$page" >/dev/null 2>&1
    [[ -s $png ]] || { log "chromium made no screenshot of $page"; exit 1; }
}

log "step graphs"
"$scone" graph -f fixtures/hello-world/mesh.yml --format svg >"$out/graph-hello-world.svg"
"$scone" graph -f fixtures/multi/mesh.yml --format svg >"$out/graph-multi.svg"

log "architecture"
"$examples/architecture" >"$out/architecture.svg"

log "timings of a $services-service build"
"$examples/gen-monorepo" --services "$services" "$work/repo" >/dev/null 2>&1
# Sources dated in the past, as in a checkout: the build state trusts them.
find "$work/repo" -exec touch -h -d '2020-09-13 12:26:40' {} +
build() {
    (cd "$work/repo" &&
        SCONE_CACHE_DIR="$work/cache" SCONE_CAS_DIR="$work/cas" XDG_CONFIG_HOME="$work/config" \
            XDG_DATA_HOME="$work/data" SCONE_SIGNING_KEY="$root/fixtures/sgx/sig1.key.pem" \
            SCONE_PROVENANCE_KEY="$root/fixtures/attest/ed25519-rfc8032-test1.pem" \
            "$scone" build -f mesh.yml -j 2 --timings -q)
}
build
screenshot "$work/repo/target/scone-timings/scone-timing.html" "$out/timings-cold.png"
changed=$work/repo/services/svc-0007/lib/file-0.txt
printf 'one more line\n' >>"$changed"
touch -d '2020-09-13 12:28:20' "$changed"
build
screenshot "$work/repo/target/scone-timings/scone-timing.html" "$out/timings-one-change.png"

log "made $(find "$out" -maxdepth 1 -type f | wc -l) figures in $out"
