#!/usr/bin/env bash
# Writes the command reference of docs/cli.md from the clap definitions: the part
# between the BEGIN and END lines of the page is replaced by what the hidden
# `scone cli-reference` prints. tests/cli_reference.rs fails while the page differs.
#
#   scripts/cli-reference.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --bin scone
page=docs/cli.md
generated=$(mktemp)
trap 'rm -f "$generated" "$page.tmp"' EXIT
# Where cargo put it: `CARGO_TARGET_DIR` or `build.target-dir` may move it.
target=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
"${target:-target}/debug/scone" cli-reference >"$generated"
grep -q '^<!-- BEGIN generated' "$page" || { echo "cli-reference: no BEGIN line in $page" >&2; exit 1; }
grep -q '^<!-- END generated' "$page" || { echo "cli-reference: no END line in $page" >&2; exit 1; }
awk -v generated="$generated" '
    /^<!-- BEGIN generated/ { while ((getline line < generated) > 0) print line; skip = 1; next }
    /^<!-- END generated/ { skip = 0; next }
    !skip { print }
' "$page" >"$page.tmp"
mv "$page.tmp" "$page"
echo "cli-reference: $page updated" >&2
