#!/bin/sh
# Build a minimal python3 root file system from Debian packages, without Docker and
# without any registry: `apt-get download` the interpreter and the libraries it links
# against, `dpkg-deb -x` them into OUT_DIR. Use it as a base image: `from: dir:OUT_DIR`.
#
#   scripts/python-rootfs.sh OUT_DIR
#
# It records the packages it was made from as dpkg would, in OUT_DIR/var/lib/dpkg/status
# (each package's control fields, `Status: install ok installed`): the SBOM of every
# image on this base lists them with their versions.
#
# Idempotent: returns at once when OUT_DIR already holds the interpreter and the
# package list. The .debs are
# kept in ${SCONE_DEB_CACHE:-~/.cache/scone/debs}; with them there, no network is used.
# Check: chroot OUT_DIR /usr/bin/python3 -c 'print(1)'
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=${1%/}
cache=${SCONE_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scone/debs}
# The interpreter, its shared libraries (ldd closure of python3.11) and the symlink
# /usr/bin/python3 -> python3.11 (python3-minimal).
packages="libc6 libgcc-s1 zlib1g libexpat1 libpython3.11-minimal python3.11-minimal python3-minimal"

if [ -x "$out/usr/bin/python3.11" ] && [ -L "$out/usr/bin/python3" ] &&
    [ -s "$out/var/lib/dpkg/status" ]; then
    exit 0
fi

mkdir -p "$cache"
for pkg in $packages; do
    if ! ls "$cache/${pkg}_"*.deb >/dev/null 2>&1; then
        echo "python-rootfs: downloading $pkg" >&2
        (cd "$cache" && apt-get download -q "$pkg" >&2) || {
            echo "python-rootfs: cannot download $pkg (no network and not in $cache?)" >&2
            echo "python-rootfs: run 'apt-get update' or put the .deb files in $cache" >&2
            exit 1
        }
    fi
done

parent=$(dirname "$out")
mkdir -p "$parent"
staging=$(mktemp -d "$parent/.python-rootfs.XXXXXX")
trap 'rm -rf "$staging"' EXIT INT TERM
mkdir -p "$staging/var/lib/dpkg"
status="$staging/var/lib/dpkg/status"
: >"$status"
for pkg in $(printf '%s\n' $packages | sort); do
    # Newest version first if several are cached.
    deb=$(ls "$cache/${pkg}_"*.deb | sort -V | tail -n 1)
    dpkg-deb -x "$deb" "$staging"
    # The package's control fields as dpkg's status file has them.
    {
        printf 'Package: %s\n' "$(dpkg-deb -f "$deb" Package)"
        echo "Status: install ok installed"
        dpkg-deb -f "$deb" | grep -v '^Package:'
        echo
    } >>"$status"
done
# Documentation is not needed at run time.
rm -rf "$staging/usr/share/doc" "$staging/usr/share/man" "$staging/usr/share/lintian"
mkdir -p "$staging/tmp" "$staging/etc"
chmod 1777 "$staging/tmp"
chmod 0755 "$staging"
[ -e "$staging/etc/passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$staging/etc/passwd"
[ -e "$staging/etc/group" ] || printf 'root:x:0:\nnogroup:x:65534:\n' >"$staging/etc/group"

if [ ! -x "$staging/usr/bin/python3.11" ]; then
    echo "python-rootfs: the packages did not provide /usr/bin/python3.11" >&2
    exit 1
fi
rm -rf "$out"
mv "$staging" "$out"
trap - EXIT INT TERM
echo "python-rootfs: $out" >&2
