#!/usr/bin/env python3
"""Summarise scripts/selfplay-demo.sh.

Reads, under OUT_DIR:
  scores.txt              "<label> <kind> <accuracy> <items>" (final greedy held-out scores)
  <arm>-seed<N>.log       the runs' step lines (proposer valid rate / reward / learnability,
                          solver accuracy / reward, step time, resident memory)
  <arm>-seed<N>/eval.jsonl  the in-run evaluator's held-out accuracy
Writes OUT_DIR/summary.json and, when matplotlib is importable, OUT_DIR/summary.png.
Usage: selfplay-summary.py OUT_DIR
"""
import glob
import json
import math
import os
import re
import statistics
import sys

out = sys.argv[1]

# The task kinds are whatever the run scored (scores.txt), in order of appearance: no list of
# kinds lives here. Step lines abbreviate a kind to its first three letters.
scores = {}
KINDS = []
for line in open(os.path.join(out, "scores.txt")):
    label, kind, acc, n = line.split()
    kind = kind.replace("heldout-", "")
    scores.setdefault(label, {})[kind] = (float(acc), int(n))
    if kind not in KINDS:
        KINDS.append(kind)
ABBR = {k[:3]: k for k in KINDS}

STEP = re.compile(r"step\s+(\d+) v\d+ \| (.*?) \| pg .*? step ([\d.]+)s \| stale \d+(?: \| rss (\d+) MiB)?")
SUB = re.compile(r"([a-z][a-z0-9_-]{2}) p=([\d.]+)/([+-][\d.]+) l=([+-]?[\d.]+) s=([\d.]+)/([+-][\d.]+)")


def parse_log(path):
    steps = []
    for line in open(path):
        m = STEP.search(line)
        if not m:
            continue
        row = {"step": int(m.group(1)), "seconds": float(m.group(3)),
               "rss_mib": int(m.group(4)) if m.group(4) else None}
        for a, valid, prew, learn, acc, srew in SUB.findall(m.group(2)):
            row[ABBR.get(a, a)] = {"valid": float(valid), "propose_reward": float(prew),
                            "learnability": float(learn), "solve_acc": float(acc),
                            "solve_reward": float(srew)}
        steps.append(row)
    return steps


def parse_evals(path):
    evals = {}
    if os.path.exists(path):
        for line in open(path):
            e = json.loads(line)
            if "step" not in e:  # the starting weights (`evaluator.at_start`), before any step
                continue
            kind = e["benchmark"].replace("heldout-", "").replace("valid-", "")
            evals.setdefault(e["step"], {})[kind] = e["accuracy"]
    return evals


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.mean(xs) if xs else None


def kinds_mean(rows, sub):
    return mean([r[k][sub] for r in rows for k in KINDS if k in r])


runs = {}
for log in sorted(glob.glob(os.path.join(out, "*-seed*.log"))):
    name = os.path.basename(log)[:-4]
    runs[name] = {"steps": parse_log(log), "evals": parse_evals(os.path.join(out, name, "eval.jsonl"))}


def se(p, n):
    return math.sqrt(p * (1 - p) / n) if n else None


summary = {"base": {}, "true": {}, "control": {}, "runs": {}}
for k in KINDS:
    acc, n = scores.get("base", {}).get(k, (None, 0))
    summary["base"][k] = {"acc": acc, "items": n, "se": se(acc, n) if acc is not None else None}
for arm in ("true", "control"):
    for k in KINDS:
        vals = [v[k][0] for lab, v in scores.items() if lab.startswith(arm + "-") and k in v]
        n = scores.get("base", {}).get(k, (None, 0))[1]
        m = mean(vals)
        summary[arm][k] = {"mean": m, "per_seed": vals,
                           "se_of_mean": se(m, n * len(vals)) if m is not None and vals else None}
    summary[arm]["all_kinds"] = mean([summary[arm][k]["mean"] for k in KINDS])
summary["base"]["all_kinds"] = mean([summary["base"][k]["acc"] for k in KINDS])

for name, run in runs.items():
    steps = run["steps"]
    q = max(1, len(steps) // 4)
    first, last = steps[:q], steps[-q:]
    rss = [s["rss_mib"] for s in steps if s["rss_mib"] is not None]
    # Step times exclude step 0 (cold start) when there is more than one step.
    timed = steps[1:] if len(steps) > 1 else steps
    tq = max(1, len(timed) // 4)
    summary["runs"][name] = {
        "steps": len(steps),
        "valid_rate": {"first_quarter": kinds_mean(first, "valid"), "last_quarter": kinds_mean(last, "valid")},
        "learnability": {"first_quarter": kinds_mean(first, "learnability"),
                         "last_quarter": kinds_mean(last, "learnability")},
        "proposer_reward": {"first_quarter": kinds_mean(first, "propose_reward"),
                            "last_quarter": kinds_mean(last, "propose_reward")},
        "solver_accuracy": {"first_quarter": kinds_mean(first, "solve_acc"),
                            "last_quarter": kinds_mean(last, "solve_acc")},
        "step_seconds": {"first_quarter_median": statistics.median([s["seconds"] for s in timed[:tq]]) if timed else None,
                         "last_quarter_median": statistics.median([s["seconds"] for s in timed[-tq:]]) if timed else None},
        "rss_mib": {"first": rss[0] if rss else None, "after_10_steps": rss[min(10, len(rss) - 1)] if rss else None,
                    "max": max(rss) if rss else None, "last": rss[-1] if rss else None},
        "in_run_eval": {str(s): e for s, e in sorted(run["evals"].items())},
    }

json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps({k: summary[k] for k in ("base", "true", "control")}, indent=1))
for name, r in summary["runs"].items():
    print(name, json.dumps({k: r[k] for k in ("steps", "valid_rate", "learnability", "solver_accuracy",
                                                "step_seconds", "rss_mib")}))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not available: no summary.png")
    sys.exit(0)

COLORS = {"true": "#2a7", "control": "#c44"}
fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
ax = axes[0][0]
w = 0.26
for i, label in enumerate(["base", "true", "control"]):
    if label == "base":
        ys = [summary["base"][k]["acc"] or 0 for k in KINDS]
        errs = [summary["base"][k]["se"] or 0 for k in KINDS]
    else:
        ys = [summary[label][k]["mean"] or 0 for k in KINDS]
        errs = [summary[label][k]["se_of_mean"] or 0 for k in KINDS]
    xs = [j + (i - 1) * w for j in range(len(KINDS))]
    ax.bar(xs, ys, w, yerr=errs, capsize=3, color=COLORS.get(label, "#888"),
           label={"base": "base (pretrained)", "true": "self-play", "control": "shuffled-reward control"}[label])
    if label != "base":
        for j, k in enumerate(KINDS):
            for v in summary[label][k]["per_seed"]:
                ax.plot(xs[j], v, "k.", ms=5)
ax.set_xticks(range(len(KINDS)))
ax.set_xticklabels(KINDS)
ax.set_ylabel("greedy accuracy (full held-out set)")
ax.set_title("held-out accuracy, base vs after the run (bars: mean ± SE, dots: seeds)")
ax.legend(fontsize=8)


def style(name):
    arm = "true" if name.startswith("true") else "control"
    return {"color": COLORS[arm], "ls": "-" if name.endswith("seed1") else "--", "label": name}


def smooth(ys, win=9):
    return [statistics.mean(ys[max(0, i - win + 1):i + 1]) for i in range(len(ys))]


ax = axes[0][1]
for name, run in sorted(runs.items()):
    pts = sorted((s, mean([e.get(k) for k in KINDS])) for s, e in run["evals"].items())
    if pts:
        ax.plot([p[0] + 1 for p in pts], [p[1] for p in pts], marker="o", ms=3, **style(name))
ax.set_xlabel("step")
ax.set_title(f"in-run accuracy, {len(KINDS)}-kind mean (subset)")
ax.legend(fontsize=7)

for ax, sub, title in [(axes[1][0], "valid", "proposer valid-program rate (9-step mean)"),
                       (axes[1][1], "learnability", "proposer learnability reward of valid proposals (9-step mean)")]:
    for name, run in sorted(runs.items()):
        steps = run["steps"]
        ys = [mean([s[k][sub] for k in KINDS if k in s]) for s in steps]
        ax.plot([s["step"] for s in steps], smooth([y or 0 for y in ys]), **style(name))
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(out, "summary.png"), dpi=90)
print("wrote", os.path.join(out, "summary.png"))
