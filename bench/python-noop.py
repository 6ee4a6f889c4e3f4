#!/usr/bin/env python3
"""The no-op of a mesh of real python services against ninja's, build by build.

DIR is a tree `bench/gen-python-mesh.py N DIR` wrote (with its build.ninja: the
user's view, per service a stamp over its files); every scone given builds its own
copy of it first (`DIR-<i>`, made here: the first build after a binary changes is
a full one), twice, and ninja builds DIR twice. Then ROUNDS rounds time ninja's
no-op and each scone's, alternating, and it prints the medians and each scone's
ratio to ninja. The default python base must exist (`scripts/python-rootfs.sh`,
or SCONE_PYTHON_ROOTFS), and SCONE_CACHE_DIR, SCONE_CAS_DIR and SCONE_SIGNING_KEY
set as for `bench/change.py`.

    bench/python-noop.py DIR ROUNDS SCONE [SCONE ...]
"""
import os
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd, cwd):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    tree, rounds, scones = os.path.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    copies = []
    for i, scone in enumerate(scones):
        copy = f"{tree}-{i}"
        if not os.path.isdir(copy):
            shutil.copytree(tree, copy, symlinks=True, ignore=shutil.ignore_patterns("target"))
        for _ in range(2):
            timed([os.path.abspath(scone), "build", "-q"], copy)
        copies.append((os.path.abspath(scone), copy))
    for _ in range(2):
        timed(["ninja"], tree)
    ninja, each = [], [[] for _ in scones]
    for _ in range(rounds):
        ninja.append(timed(["ninja"], tree))
        for (scone, copy), times in zip(copies, each):
            times.append(timed([scone, "build", "-q"], copy))
    base = statistics.median(ninja)
    line = [f"ninja {base:.1f} ms"]
    for scone, times in zip(scones, each):
        m = statistics.median(times)
        line.append(f"{scone} {m:.1f} ms ({m / base:.2f}x)")
    print("  ".join(line))


if __name__ == "__main__":
    main()
