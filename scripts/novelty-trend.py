#!/usr/bin/env python3
"""Is the novel share of a run's proposals rising? A least-squares line per run through its novel
share per window of WINDOW steps, and the mean slope over the runs given with its standard error
(sample standard deviation of the per-run slopes / sqrt(runs)), in points per 100 steps.

Counts valid deduction and abduction proposals (an induction proposal reuses a buffered
program, so its shape is never new) from the rollout dumps (`run.dump_rollouts = true`). Only
whole windows below LAST (default: every window the run completed) count, so runs stopped at
different steps are compared over the same steps. Also prints each run's first and last window
and the pooled share over the counted steps.

Usage: novelty-trend.py WINDOW [--last LAST] RUN_DIR [RUN_DIR...]
"""
import math
import statistics
import sys

from rollouts import valid_proposals

args = sys.argv[1:]
if len(args) < 2:
    sys.exit(__doc__)
window = int(args.pop(0))
last = None
if args and args[0] == "--last":
    last = int(args[1])
    args = args[2:]
if not args:
    sys.exit(__doc__)


def shares(run_dir):
    """[(window start, novel, valid)] of the run's whole windows below `last`."""
    per = {}
    top = -1
    for step, r in valid_proposals(run_dir):
        top = max(top, step)
        if r["task"] not in ("deduction", "abduction"):
            continue
        acc = per.setdefault(step - step % window, [0, 0])
        acc[0] += bool(r.get("novel"))
        acc[1] += 1
    end = (top + 1) if last is None else min(last, top + 1)
    return [(w, n, v) for w, (n, v) in sorted(per.items()) if w + window <= end and v > 0]


def slope(points):
    """Least-squares slope of (x, y) points."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


slopes = []
for run in args:
    ws = shares(run)
    if len(ws) < 2:
        sys.exit(f"{run}: fewer than two whole windows of {window} steps")
    pts = [(w + window / 2, 100.0 * n / v) for w, n, v in ws]
    s = 100.0 * slope(pts)
    slopes.append(s)
    novel = sum(n for _, n, _ in ws)
    valid = sum(v for _, _, v in ws)
    print(
        f"{run:<40} steps 0-{ws[-1][0] + window - 1}: {len(ws)} windows, first {pts[0][1]:5.1f} %, "
        f"last {pts[-1][1]:5.1f} %, pooled {100.0 * novel / valid:5.1f} % of {valid}, "
        f"slope {s:+6.2f} points per 100 steps"
    )
if len(slopes) > 1:
    se = statistics.stdev(slopes) / math.sqrt(len(slopes))
    print(
        f"mean slope over {len(slopes)} runs: {statistics.fmean(slopes):+.2f} ± {se:.2f} "
        "points per 100 steps"
    )
