#!/usr/bin/env python3
"""Two scone binaries on the one-file change, alternating build by build.

How an optimisation of the incremental path is measured on a noisy machine:
each round edits one file of each tree and builds it with A and with B
(the order swapped every round), so slow drifts of the machine hit both.
Each binary gets a tree of its own (the first build after a binary changes is
a full one). Prints the medians of wall time and CPU (user + system, from
`wait4`) and the per-round median ratio B/A of each.

Trees that are not byte-identical copies build at different speeds. Run it
twice with the trees swapped, and take the geometric mean of the two ratios.

    ab.py A B ROUNDS TREE_A TREE_B

The trees are 1000-service repos that `bench/suite.sh` generates (`m1000`),
each built once. Set SCONE_CACHE_DIR, SCONE_CAS_DIR and SCONE_SIGNING_KEY as for
`bench/change.py`.
"""
import os
import statistics
import subprocess
import sys
import time


def build(scone, tree):
    start = time.perf_counter()
    proc = subprocess.Popen([scone, "build", "-f", "mesh.yml", "-q"], cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{scone} failed in {tree}")
    return (time.perf_counter() - start) * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def edit(tree):
    with open(os.path.join(tree, "services", "svc-0500", "lib", "file-1.txt"), "w") as f:
        f.write(str(time.time_ns()))


def main():
    a, b, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trees = {a: sys.argv[4], b: sys.argv[5]}
    # Warm-up: each tree built by its binary, records written.
    for scone in (a, b):
        for _ in range(3):
            edit(trees[scone])
            time.sleep(0.1)
            build(scone, trees[scone])
    runs = {a: [], b: []}
    for r in range(rounds):
        for scone in (a, b) if r % 2 == 0 else (b, a):
            edit(trees[scone])
            subprocess.run(["sync"], check=True)
            time.sleep(0.1)
            runs[scone].append(build(scone, trees[scone]))
    for scone in (a, b):
        wall = statistics.median(w for w, _ in runs[scone])
        cpu = statistics.median(c for _, c in runs[scone])
        print(f"{scone}: wall {wall:.1f} ms, cpu {cpu:.1f} ms")
    for i, what in ((0, "wall"), (1, "cpu")):
        ratio = statistics.median(y[i] / x[i] for x, y in zip(runs[a], runs[b]))
        print(f"B/A per-round median {what}: {ratio:.3f}")


if __name__ == "__main__":
    main()
