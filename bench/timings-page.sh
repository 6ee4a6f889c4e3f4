#!/usr/bin/env bash
# How fast the `--timings` page of a big build opens in a browser (issue 25: "the page
# opens in under 2 s"). Generates a monorepo of SERVICES services
# (examples/gen-monorepo.rs), builds it cold with `scone build --timings -j 2`, then opens
# target/scone-timings/scone-timing.html in headless Chromium RUNS times, each with a
# fresh profile:
#
#   load       the page's load event (read, parsed, styled), from its navigation start;
#   laid out   after the whole page is laid out (the harness reads its height), from the
#              same start;
#   screenshot the wall time of `chromium --screenshot` of the page (start-up, load,
#              layout and paint of a 1400×1000 window), against the same of a blank page
#              (hyperfine, when installed).
#
# The page is measured from a harness page of the script's own that frames it (the
# timings page itself runs no script: its CSP forbids it); the harness needs
# --allow-file-access-from-files to read the frame's clock. See bench/README.md.
#
# Environment (all optional):
#   SERVICES=1000   services in the monorepo     RUNS=5   Chromium runs per measure
#   SCONE=PATH      the scone binary (default: `cargo build`, then target/debug/scone;
#                   the page does not depend on how fast scone is)
#   BENCH_DIR=DIR   where the tree goes (default: a temp dir, removed at the end)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES=${SERVICES:-1000}
RUNS=${RUNS:-5}
SCONE=${SCONE:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

command -v chromium >/dev/null || die "chromium is missing: run scripts/ci-deps.sh"
(cd "$ROOT" && cargo build --bin scone --example gen-monorepo >&2)
SCONE=${SCONE:-$TARGET_DIR/debug/scone}

if [[ -n ${BENCH_DIR:-} ]]; then
    work=$BENCH_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/scone-timings-bench.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi

log "a cold build of $SERVICES services with --timings"
rm -rf "$work/repo"
"$TARGET_DIR/debug/examples/gen-monorepo" --services "$SERVICES" "$work/repo" >/dev/null
find "$work/repo" -exec touch -h -d '2020-09-13 12:26:40' {} +
(cd "$work/repo" &&
    SCONE_CACHE_DIR="$work/cache" SCONE_CAS_DIR="$work/cas" XDG_CONFIG_HOME="$work/config" \
        XDG_DATA_HOME="$work/data" SCONE_SIGNING_KEY="$ROOT/fixtures/sgx/sig1.key.pem" \
        "$SCONE" build -f mesh.yml -j 2 --timings -q)
page=$work/repo/target/scone-timings/scone-timing.html
cp "$page" "$work/page.html"
printf '<!DOCTYPE html><html><body>blank</body></html>\n' >"$work/blank.html"
cat >"$work/harness.html" <<'EOF'
<!DOCTYPE html><html><body><script>
function done(frame) {
  var w = frame.contentWindow;
  var load = w.performance.getEntriesByType('navigation')[0].loadEventEnd;
  var height = w.document.documentElement.scrollHeight;
  var laidOut = w.performance.now();
  document.body.setAttribute('data-result', load.toFixed(0) + ' ' + laidOut.toFixed(0) + ' ' + height);
}
</script><iframe onload="done(this)" src="page.html" width="1400" height="1000"></iframe></body></html>
EOF

flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --disable-extensions "--host-resolver-rules=MAP * ~NOTFOUND")
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "opening the page $RUNS times"
: >"$work/load" && : >"$work/laid-out"
for ((i = 0; i < RUNS; i++)); do
    rm -rf "$work/profile"
    result=$(chromium "${flags[@]}" --allow-file-access-from-files --user-data-dir="$work/profile" \
        --dump-dom "file://$work/harness.html" 2>/dev/null | grep -o 'data-result="[^"]*"' || true)
    [[ -n $result ]] || die "the harness gave no result"
    read -r load laid_out height <<<"${result//[!0-9 ]/}"
    echo "$load" >>"$work/load"
    echo "$laid_out" >>"$work/laid-out"
done

printf 'services\tpage bytes\tsteps drawn\tpage height (px)\tload (ms, median)\tlaid out (ms, median)\n'
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$SERVICES" "$(stat -c %s "$page")" \
    "$(grep -o 'class="bar ' "$page" | wc -l)" "$height" \
    "$(median <"$work/load")" "$(median <"$work/laid-out")"

# The shell command of a screenshot of $work/NAME.html.
shot() {
    printf '%q ' chromium "${flags[@]}" --user-data-dir="$work/profile" --window-size=1400,1000 \
        --screenshot="$work/$1.png" "file://$work/$1.html"
}
if command -v hyperfine >/dev/null; then
    log "chromium --screenshot: the page against a blank page"
    hyperfine --runs "$RUNS" --warmup 1 --style basic \
        --prepare "rm -rf $work/profile" \
        -n blank "$(shot blank)" -n "timings page" "$(shot page)" >&2
fi
