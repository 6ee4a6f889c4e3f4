#!/usr/bin/env python3
"""Cold build, no-op and one-file change of generated monorepos of several sizes
(issue 26: 100 / 1,000 / 10,000 services), measured round by round so that a slow
spell of the shared machine lands on every size alike.

Each round, for each size: a cold build (target/ renamed away beforehand, deleted
after), a warm-up no-op, NOOPS timed no-ops, then the one-file change: one file of the
middle service edited 100 ms before the build (as a person's edit), and its peer:
that service built cold alone (the 1-service tree, same bytes) plus a no-op of the
big tree. Every build is timed from outside with wait4: wall, CPU (user + sys) and
peak RSS. Prints a table of medians, the cost per service and the growth of the
cost per service from one size to the next; writes every measurement to OUT.

    scale.py SCONE ROUNDS NOOPS OUT.json ONE_TREE TREE...
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def build(scone, cwd):
    """Runs one `scone build`; returns (wall ms, cpu ms, peak RSS MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([scone, "build", "-f", "mesh.yml", "-q"], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"scone build failed in {cwd}:\n{err.decode(errors='replace')[-2000:]}")
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    return {"wall": wall, "cpu": cpu, "rss": usage.ru_maxrss / 1024}


def services(tree):
    return len(os.listdir(os.path.join(tree, "services")))


def cold(scone, tree):
    target = os.path.join(tree, "target")
    trash = os.path.join(tree, "target.old")
    if os.path.exists(target):
        os.rename(target, trash)
    shutil.rmtree(trash, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    return build(scone, tree)


def edit(path):
    with open(path, "w") as f:
        f.write(str(time.time_ns()))
    subprocess.run(["sync"], check=True)
    time.sleep(0.1)


def main():
    scone, rounds, noops, out, one = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    trees = sys.argv[6:]
    sizes = [services(t) for t in trees]
    rows = {n: {"cold": [], "noop": [], "change": [], "single": [], "peer_noop": []} for n in sizes}
    for r in range(rounds):
        for tree, n in zip(trees, sizes):
            edited = os.path.join(tree, "services", f"svc-{n // 2:04}", "lib", "file-1.txt")
            row = rows[n]
            row["cold"].append(cold(scone, tree))
            build(scone, tree)  # warm-up: the first no-op re-hashes what the cold build wrote
            for _ in range(noops):
                row["noop"].append(build(scone, tree))
            edit(edited)
            row["change"].append(build(scone, tree))
            row["single"].append(cold(scone, one))
            row["peer_noop"].append(build(scone, tree))
            c = row["cold"][-1]
            print(f"round {r + 1} {n:>6} svc: cold {c['wall']:.0f} ms ({c['rss']:.0f} MB), "
                  f"no-op {row['noop'][-1]['wall']:.0f}, change {row['change'][-1]['wall']:.0f}, "
                  f"single {row['single'][-1]['wall']:.0f} ms; load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)
    with open(out, "w") as f:
        json.dump({"sizes": sizes, "rows": rows}, f, indent=1)

    def med(n, kind, key):
        return statistics.median(x[key] for x in rows[n][kind])

    print(f"medians of {rounds} rounds ({noops} no-ops each); ms unless said; per service in µs")
    print("| services | measure | wall | CPU | wall per service (µs) | CPU per service (µs) | peak RSS (MB) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        for kind in ("cold", "noop", "change"):
            w, c, m = med(n, kind, "wall"), med(n, kind, "cpu"), med(n, kind, "rss")
            print(f"| {n} | {kind} | {w:.1f} | {c:.1f} | {w * 1000 / n:.1f} | {c * 1000 / n:.1f} | {m:.0f} |")
    print()
    print("| services | one-file change | that service cold | no-op | change / (cold 1 + no-op), wall | same, CPU |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        ratio = {}
        for key in ("wall", "cpu"):
            ratio[key] = statistics.median(
                ch[key] / (s[key] + p[key])
                for ch, s, p in zip(rows[n]["change"], rows[n]["single"], rows[n]["peer_noop"]))
        print(f"| {n} | {med(n, 'change', 'wall'):.1f} | {med(n, 'single', 'wall'):.1f} | "
              f"{med(n, 'peer_noop', 'wall'):.1f} | {ratio['wall']:.2f} | {ratio['cpu']:.2f} |")
    print()
    print("growth of the cost per service (larger size / smaller size; linear = 1.0)")
    print("| sizes | cold wall | cold CPU | no-op wall | no-op CPU | change wall | change CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for a, b in zip(sizes, sizes[1:]):
        cells = []
        for kind in ("cold", "noop", "change"):
            for key in ("wall", "cpu"):
                cells.append(f"{(med(b, kind, key) / b) / (med(a, kind, key) / a):.2f}")
        print(f"| {a} → {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
