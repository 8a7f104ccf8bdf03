#!/usr/bin/env python3
"""Plot the novel share of valid proposals per window of steps, one line per arm (mean over its
seeds, thin lines per seed), next to the arms' held-out accuracy.

Each ARM=RUN_DIR[,RUN_DIR...] argument names an arm and its runs; the novel share per window comes
from novelty-summary.py (deduction and abduction proposals only: an induction proposal reuses a
program from the buffer, so its shape is never new). SCORES is a file of score-kinds.sh lines
(labels `base` and `<arm>-seed<N>`), shown as each arm's mean of the kinds per seed.

Prints each arm's share per window (per seed, then the mean) as it goes.

Usage: novelty-plot.py OUT.png WINDOW SCORES ARM=RUN_DIR[,RUN_DIR...] ...
"""
import collections
import json
import os
import statistics
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if len(sys.argv) < 5:
    sys.exit(__doc__)
out, window, scores_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
arms = [(a.split("=", 1)[0], a.split("=", 1)[1].split(",")) for a in sys.argv[4:]]
here = os.path.dirname(os.path.abspath(__file__))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
for i, (arm, runs) in enumerate(arms):
    color = f"C{i}"
    per_window = collections.defaultdict(list)
    for run in runs:
        s = json.loads(subprocess.check_output(
            [sys.executable, os.path.join(here, "novelty-summary.py"), run, str(window), "--json"]))
        tot = collections.defaultdict(lambda: [0, 0])
        for r in s["windows"]:
            if r["kind"] in ("deduction", "abduction"):
                tot[r["from_step"]][0] += r["valid"]
                tot[r["from_step"]][1] += r["novel"]
        # Drop a last window with fewer than half the proposals of the first (a run stopped in it).
        full = max((v for v, _ in tot.values()), default=0)
        xs = [w for w in sorted(tot) if tot[w][0] >= full / 2]
        ys = [100 * tot[w][1] / tot[w][0] for w in xs]
        ax1.plot([x + window / 2 for x in xs], ys, color=color, alpha=0.3, lw=1)
        for x, y in zip(xs, ys):
            per_window[x].append(y)
    xs = sorted(w for w in per_window if len(per_window[w]) == len(runs))
    for x in xs:
        shares = ", ".join(f"{y:.1f}" for y in per_window[x])
        print(f"{arm:<12} steps {x:>3}-{x + window - 1:<3} novel share % per seed {shares}"
              f" -> mean {statistics.mean(per_window[x]):.2f}")
    ax1.plot([x + window / 2 for x in xs], [statistics.mean(per_window[x]) for x in xs],
             color=color, lw=2.5, marker="o", label=f"{arm} ({len(runs)} seeds)")
ax1.axhline(20, color="grey", ls="--", lw=1, label="goal: 20 %")
ax1.set_xlabel("step (window centre)")
ax1.set_ylabel("novel share of valid deduction + abduction proposals (%)")
ax1.set_title(f"novel proposals per {window}-step window")
ax1.legend()

acc = collections.defaultdict(dict)
for line in open(scores_path):
    p = line.split()
    if len(p) == 4 and not line.startswith("#"):
        acc[p[0]][p[1]] = 100 * float(p[2])
means = {label: statistics.mean(v.values()) for label, v in acc.items()}
if "base" in means:
    ax2.axhline(means["base"], color="black", lw=1.5, label=f"base {means['base']:.2f}")
names = [a for a, _ in arms] + sorted({lab.rsplit("-seed", 1)[0] for lab in means if "-seed" in lab}
                                      - {a for a, _ in arms})
for i, arm in enumerate(names):
    vals = [m for lab, m in means.items() if lab.rsplit("-seed", 1)[0] == arm and "-seed" in lab]
    if not vals:
        continue
    m = statistics.mean(vals)
    se = statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else 0
    ax2.bar(i, m, yerr=se, color=f"C{i}", alpha=0.6, capsize=4)
    ax2.scatter([i] * len(vals), vals, color="black", s=12, zorder=3)
ax2.set_xticks(range(len(names)), names)
lo = min(means.values()) - 3
ax2.set_ylim(lo, max(means.values()) + 2)
ax2.set_ylabel("held-out greedy accuracy, mean of the kinds (%)")
ax2.set_title("held-out accuracy (bars: mean ± SE over seeds; dots: seeds)")
ax2.legend()
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
