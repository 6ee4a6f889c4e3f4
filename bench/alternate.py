#!/usr/bin/env python3
"""Times two commands round by round, taking turns (A then B, then B then A), each
after PREPARE, so a slow spell of a shared machine lands on both sides (hyperfine
runs all of A, then all of B). Keeps every time in OUT.json.

    bench/alternate.py ROUNDS PREPARE CMD_A CMD_B OUT.json

PREPARE, CMD_A and CMD_B are shell commands; a failing command stops the run.
Prints one line: median_a_ms median_b_ms ratio_of_medians median_of_round_ratios
(ratios A/B).
"""
import json
import statistics
import subprocess
import sys
import time


def run(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    rounds, prepare, cmd_a, cmd_b, out = int(sys.argv[1]), *sys.argv[2:]
    a, b = [], []
    for i in range(rounds):
        order = [(cmd_a, a), (cmd_b, b)]
        if i % 2:
            order.reverse()
        for cmd, times in order:
            subprocess.run(prepare, shell=True, check=True)
            times.append(run(cmd))
    ma, mb = statistics.median(a), statistics.median(b)
    per_round = statistics.median(x / y for x, y in zip(a, b))
    with open(out, "w") as f:
        json.dump({"a_ms": a, "b_ms": b}, f)
    print(f"{ma:.1f} {mb:.1f} {ma / mb:.2f} {per_round:.2f}")


if __name__ == "__main__":
    main()
