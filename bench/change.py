#!/usr/bin/env python3
"""The one-file change of issue 9, measured interleaved with its peer.

Each round edits one file of the 1000-service repo and times the change build,
then times the peer: that one service built cold alone plus a no-op of the repo.
Interleaving rounds (rather than timing all change builds, then all peer
builds, as `hyperfine` does) keeps slow drifts of a shared machine out of the
ratio. Every build starts with the page cache written back (`sync`), and the
edit lands 100 ms before the build, as a person's would.

    change.py SCONE M1000 M1 RUNS OUT.json [EDITED]

EDITED: the file edited, relative to M1000 (default: a file of svc-0500, as
`bench/suite.sh` generates it; `services/py-0500/print_env.py` for a tree of
`bench/gen-python-mesh.py`, with M1 a one-service tree of the same script).
"""
import json
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
    scone, big, small, runs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    build = [scone, "build", "-f", "mesh.yml", "-q"]
    edited = os.path.join(big, sys.argv[6] if len(sys.argv) > 6 else "services/svc-0500/lib/file-1.txt")
    # Each edit keeps what the file held and adds a line (a comment, for a
    # python file).
    with open(edited) as f:
        held = f.read()
    rows = []
    # Warm-up: both trees built, both records written.
    for _ in range(2):
        with open(edited, "w") as f:
            f.write(f"{held}# {time.time_ns()}\n")
        time.sleep(0.1)
        timed(build, big)
    for _ in range(runs):
        with open(edited, "w") as f:
            f.write(f"{held}# {time.time_ns()}\n")
        subprocess.run(["sync"], check=True)
        time.sleep(0.1)
        change = timed(build, big)
        shutil.rmtree(os.path.join(small, "target"), ignore_errors=True)
        subprocess.run(["sync"], check=True)
        single = timed(build, small)
        noop = timed(build, big)
        rows.append({"change": change, "single": single, "noop": noop})
    med = {k: statistics.median(r[k] for r in rows) for k in ("change", "single", "noop")}
    peer = med["single"] + med["noop"]
    per_round = statistics.median(r["change"] / (r["single"] + r["noop"]) for r in rows)
    result = {"rounds": rows, "median": med, "peer": peer,
              "ratio": med["change"] / peer, "ratio_per_round_median": per_round}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{med['change']:.1f} {peer:.1f} {med['change'] / peer:.2f} {per_round:.2f}")


if __name__ == "__main__":
    main()
