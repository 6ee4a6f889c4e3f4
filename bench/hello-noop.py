#!/usr/bin/env python3
"""The no-op of the bundled hello-world, two scone binaries alternating.

Each binary gets its own copy of fixtures/hello-world (the first build after a
binary changes is a full one), builds it twice, then the two no-ops are timed
build by build, ROUNDS times. Prints the medians and the ratio B/A. Run it both
ways round (A B, then B A): the copies build at slightly different speeds.

    bench/hello-noop.py A B [ROUNDS]

Needs what `scripts/example.sh` makes (the default python base in the user
cache); uses the user's signing key and local CAS as `scone build` does.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(scone, tree):
    start = time.perf_counter()
    subprocess.run([scone, "build", "-q"], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main():
    a, b = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 21
    fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hello-world")
    with tempfile.TemporaryDirectory() as work:
        trees = {}
        for name, scone in (("a", a), ("b", b)):
            tree = os.path.join(work, name)
            shutil.copytree(fixture, tree, symlinks=True,
                            ignore=shutil.ignore_patterns("target"))
            timed(scone, tree)
            timed(scone, tree)
            trees[scone] = tree
        times = {a: [], b: []}
        for _ in range(rounds):
            for scone in (a, b):
                times[scone].append(timed(scone, trees[scone]))
    ma, mb = statistics.median(times[a]), statistics.median(times[b])
    print(f"A {ma:.2f} ms  B {mb:.2f} ms  B/A {mb / ma:.3f}")


if __name__ == "__main__":
    main()
