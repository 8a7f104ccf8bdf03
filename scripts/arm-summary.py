#!/usr/bin/env python3
"""Arms x seeds table from score-kinds.sh lines: mean of the kinds per run, each arm's mean ± SE
over seeds, and each arm's paired difference per seed against the base and against other arms.

Input: "<label> <kind> <accuracy> <items>" lines (score-kinds.sh; several files are concatenated),
labels `base` and `<arm>-seed<N>`. Accuracies are printed in points (%). The SE of a mean over
seeds is the sample standard deviation over seeds / sqrt(seeds); a paired difference is taken
seed by seed, so only seeds present in both arms count.

Usage: arm-summary.py SCORES.txt [SCORES2.txt ...] [--vs ARM_A:ARM_B ...]
  e.g. arm-summary.py runs/x/scores.txt --vs true:control
"""
import collections
import math
import re
import statistics
import sys

files = [a for a in sys.argv[1:] if not a.startswith("--") and ":" not in a]
pairs = [a.split(":") for a in sys.argv[1:] if ":" in a]
if not files:
    sys.exit(__doc__)

acc = collections.defaultdict(dict)  # label -> kind -> accuracy (points)
kinds = []
for f in files:
    for line in open(f):
        parts = line.split()
        if len(parts) != 4 or line.startswith("#"):
            continue
        label, kind, a, _n = parts
        acc[label][kind] = 100 * float(a)
        if kind not in kinds:
            kinds.append(kind)

def run_mean(label):
    return statistics.mean(acc[label][k] for k in kinds)

def mean_se(xs):
    m = statistics.mean(xs)
    return m, (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan"))

arms = collections.defaultdict(dict)  # arm -> seed -> label
for label in acc:
    m = re.fullmatch(r"(.+)-seed(\d+)", label)
    if m:
        arms[m.group(1)][int(m.group(2))] = label

print("run".ljust(22) + "".join(k[:10].rjust(11) for k in kinds) + "   mean")
for label in sorted(acc, key=lambda l: (l != "base", l)):
    print(label.ljust(22) + "".join(f"{acc[label][k]:11.2f}" for k in kinds) + f"{run_mean(label):7.2f}")
print()
base = run_mean("base") if "base" in acc else None
for arm, seeds in sorted(arms.items()):
    vals = [run_mean(seeds[s]) for s in sorted(seeds)]
    m, se = mean_se(vals)
    line = f"{arm}: {m:.2f} ± {se:.2f} over {len(vals)} seeds"
    if base is not None:
        d = [v - base for v in vals]
        line += f"; vs base: " + ", ".join(f"{x:+.2f}" for x in d) + " -> {:+.2f} ± {:.2f}".format(*mean_se(d))
    print(line)
for a, b in pairs:
    common = sorted(set(arms[a]) & set(arms[b]))
    if not common:
        print(f"{a} vs {b}: no common seeds")
        continue
    d = [run_mean(arms[a][s]) - run_mean(arms[b][s]) for s in common]
    print(f"{a} - {b}, seeds {common}: " + ", ".join(f"{x:+.2f}" for x in d)
          + " -> {:+.2f} ± {:.2f}".format(*mean_se(d)))
