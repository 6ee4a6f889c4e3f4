#!/usr/bin/env bash
# The main job on the bundled example, with embedded defaults: a local python base
# image made from Debian packages, the embedded local CAS, no registry, no Docker.
#
#   scripts/example.sh
#
# Builds scone, builds fixtures/hello-world (image, signed enclave, CAS session, Helm
# chart under fixtures/hello-world/target/), applies the session to the local CAS,
# then runs the service natively in simulation mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache=${SCONE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/scone}
# The python base is made from Debian packages: a fresh machine may have no package
# lists yet for `apt-get download`.
if [[ ! -x $cache/rootfs/python3/usr/bin/python3.11 ]] && ! apt-cache show python3.11-minimal >/dev/null 2>&1; then
    echo "example: refreshing the Debian package lists (apt-get update)" >&2
    if [[ $(id -u) == 0 ]]; then apt-get update -q >&2; else sudo apt-get update -q >&2; fi
fi
scripts/python-rootfs.sh "$cache/rootfs/python3"
echo "example: building scone (cargo build; the first build takes minutes)" >&2
cargo build
# Where cargo put it: `CARGO_TARGET_DIR` or `build.target-dir` may move it.
target=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
scone=${target:-target}/debug/scone
"$scone" apply -f fixtures/hello-world/mesh.yml
"$scone" run -p python_app -f fixtures/hello-world/mesh.yml --native
echo
echo "Outputs: fixtures/hello-world/target/{images,enclave,policy,helm}"
echo "Next: helm install python-app fixtures/hello-world/target/helm"
