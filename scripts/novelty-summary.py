#!/usr/bin/env python3
"""Novel share of valid proposals over a run, from its rollout dumps.

Reads RUN_DIR/rollouts/step_*.jsonl (every valid proposal's record carries `shape` and `novel`:
its normalised program shape is in neither the pretraining corpus nor the shapes already admitted
to the task buffers, see src/tasks/novelty.rs) and prints, per window of WINDOW steps and per task
kind, the valid proposals, the novel ones and their share, the distinct shapes proposed so far,
and the window's spread of shapes: the effective number of shapes (exp of the entropy of the
window's shape counts; a proposer collapsing onto few shapes drives it down) and the most common
shape's share. The last lines are the whole-run totals. With --json it prints the same as one
JSON object.

Usage: novelty-summary.py RUN_DIR [WINDOW] [--json]
"""
import collections
import json
import math
import sys

from rollouts import valid_proposals

args = [a for a in sys.argv[1:] if a != "--json"]
as_json = "--json" in sys.argv[1:]
if not args:
    sys.exit(__doc__)
run_dir = args[0]
window = int(args[1]) if len(args) > 1 else 10

windows = {}  # (first step of window, kind) -> [valid, novel]
totals = {}   # kind -> [valid, novel]
shapes = {}   # kind -> set of shapes proposed (valid ones)
distinct_at = {}  # (first step of window, kind) -> distinct shapes so far
counts = {}   # (first step of window, kind) -> Counter of the window's shapes
for step, r in valid_proposals(run_dir):
    w = step - step % window
    kind = r["task"]
    novel = bool(r.get("novel"))
    for acc in (windows.setdefault((w, kind), [0, 0]), totals.setdefault(kind, [0, 0])):
        acc[0] += 1
        acc[1] += int(novel)
    if r.get("shape") is not None:
        shapes.setdefault(kind, set()).add(r["shape"])
        counts.setdefault((w, kind), collections.Counter())[r["shape"]] += 1
    distinct_at[(w, kind)] = len(shapes.get(kind, ()))


def share(v, n):
    return n / v if v else float("nan")


def spread(c):
    """(effective number of shapes, top shape's share) of a Counter of shapes."""
    n = sum(c.values())
    if not n:
        return float("nan"), float("nan")
    h = -sum(v / n * math.log(v / n) for v in c.values())
    return math.exp(h), max(c.values()) / n


rows = []
for (w, k), (v, n) in sorted(windows.items()):
    effective, top = spread(counts.get((w, k), {}))
    rows.append({"from_step": w, "kind": k, "valid": v, "novel": n, "novel_share": share(v, n),
                 "distinct_shapes_so_far": distinct_at.get((w, k), 0),
                 "effective_shapes": effective, "top_shape_share": top})
total = {k: {"valid": v, "novel": n, "novel_share": share(v, n),
             "distinct_shapes": len(shapes.get(k, ()))}
         for k, (v, n) in sorted(totals.items())}
all_v = sum(v for v, _ in totals.values())
all_n = sum(n for _, n in totals.values())
if as_json:
    print(json.dumps({"window": window, "windows": rows, "total": total,
                      "all": {"valid": all_v, "novel": all_n,
                              "novel_share": share(all_v, all_n)}}, indent=1))
else:
    print(f"{'steps':>12} {'kind':<12} {'valid':>6} {'novel':>6} {'share':>6} {'distinct':>8} "
          f"{'effective':>9} {'top':>6}")
    for r in rows:
        print(f"{r['from_step']:>5}-{r['from_step'] + window - 1:<6} {r['kind']:<12} "
              f"{r['valid']:>6} {r['novel']:>6} {r['novel_share']:>6.1%} "
              f"{r['distinct_shapes_so_far']:>8} {r['effective_shapes']:>9.1f} "
              f"{r['top_shape_share']:>6.1%}")
    for k, t in total.items():
        print(f"{'all':>12} {k:<12} {t['valid']:>6} {t['novel']:>6} {t['novel_share']:>6.1%} "
              f"{t['distinct_shapes']:>8}")
    print(f"{'all':>12} {'(all kinds)':<12} {all_v:>6} {all_n:>6} {share(all_v, all_n):>6.1%}")
