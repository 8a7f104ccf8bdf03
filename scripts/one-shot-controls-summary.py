#!/usr/bin/env python3
"""Summarise scripts/one-shot-controls.sh: held-out accuracy per arm and paired differences.

    python3 scripts/one-shot-controls-summary.py OUT SEED...

Reads OUT/{none,random,format}-seedS/eval.jsonl (greedy held-out accuracy of the pinned weights of
version 0 and every 20 steps) and writes OUT/summary.json: per arm the final accuracy per seed, its
mean and standard error over seeds, and per comparison (true - random, true - format,
true - base) the mean paired difference over seeds with its standard error. The base model's
accuracy is version 0 of the runs (greedy, so the same in every run).
"""
import json
import math
import sys
from pathlib import Path

ARMS = {"none": "true reward", "random": "random reward (Bernoulli 0.5)", "format": "format-only reward"}


def mean_se(v):
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return m, sd / math.sqrt(len(v))


def main(out, seeds):
    out = Path(out)
    final, base, curves = {}, [], {}
    for arm in ARMS:
        final[arm] = []
        for s in seeds:
            rows = sorted(
                (json.loads(l) for l in open(out / f"{arm}-seed{s}" / "eval.jsonl")),
                key=lambda j: j["policy_version"],
            )
            curves[f"{arm}-seed{s}"] = [(r["policy_version"], r["accuracy"]) for r in rows]
            final[arm].append(100 * rows[-1]["accuracy"])
            if rows[0]["policy_version"] == 0:
                base.append(100 * rows[0]["accuracy"])
    summary = {"seeds": seeds, "base_accuracy_pct": base[0] if base else None, "arms": {}, "differences": {}}
    for arm, label in ARMS.items():
        m, se = mean_se(final[arm])
        summary["arms"][arm] = {"label": label, "final_pct": final[arm], "mean": round(m, 2), "se": round(se, 2)}
    for other in ("random", "format"):
        d = [a - b for a, b in zip(final["none"], final[other])]
        m, se = mean_se(d)
        summary["differences"][f"true_minus_{other}"] = {"per_seed": d, "mean": round(m, 2), "se": round(se, 2)}
    if base:
        d = [a - base[0] for a in final["none"]]
        m, se = mean_se(d)
        summary["differences"]["true_minus_base"] = {"per_seed": d, "mean": round(m, 2), "se": round(se, 2)}
    summary["curves"] = curves
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "curves"}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
