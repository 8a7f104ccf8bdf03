#!/usr/bin/env python3
"""Summarise scripts/selfplay-demo.sh: final held-out accuracy (base, self-play, shuffled control),
and per-step proposer/solver numbers parsed from the runs' step log lines.

Writes OUT/summary.json and, when matplotlib is importable, OUT/summary.png.
Usage: selfplay-summary.py OUT_DIR
"""
import glob, json, os, re, statistics, sys

out = sys.argv[1]
KINDS = ["deduction", "abduction", "induction"]
ABBR = {"ded": "deduction", "abd": "abduction", "ind": "induction"}

# scores.txt lines: "<label> <kind> <accuracy> <items>"
scores = {}
for line in open(os.path.join(out, "scores.txt")):
    label, kind, acc, n = line.split()
    scores.setdefault(label, {})[kind] = (float(acc), int(n))

step_re = re.compile(r"step\s+(\d+) v\d+ \| (.*?) \| pg")
sub_re = re.compile(r"(ded|abd|ind) p=([\d.]+)/([+-][\d.]+) s=([\d.]+)/([+-][\d.]+)")
runs = {}
for log in sorted(glob.glob(os.path.join(out, "*-seed*.log"))):
    name = os.path.basename(log)[:-4]
    steps = []
    for line in open(log):
        m = step_re.search(line)
        if not m:
            continue
        row = {"step": int(m.group(1))}
        for a, valid, prew, acc, srew in sub_re.findall(m.group(2)):
            k = ABBR[a]
            row[k] = {"valid": float(valid), "propose_reward": float(prew),
                      "solve_acc": float(acc), "solve_reward": float(srew)}
        steps.append(row)
    runs[name] = steps

def arm_mean(arm, kind):
    vals = [v[kind][0] for k, v in scores.items() if k.startswith(arm + "-") and kind in v]
    return (statistics.mean(vals), vals) if vals else (None, [])

summary = {"base": {k: scores.get("base", {}).get(k, (None, 0))[0] for k in KINDS},
           "items": {k: scores.get("base", {}).get(k, (None, 0))[1] for k in KINDS},
           "true": {}, "control": {}, "runs": {}}
for arm in ("true", "control"):
    for k in KINDS:
        m, vals = arm_mean(arm, k)
        summary[arm][k] = {"mean": m, "per_seed": vals}
for name, steps in runs.items():
    def avg(key, sub):
        xs = [s[k][sub] for s in steps for k in KINDS if k in s]
        return statistics.mean(xs) if xs else None
    half = len(steps) // 2
    first, last = steps[:half], steps[half:]
    def avg_of(rows, sub):
        xs = [s[k][sub] for s in rows for k in KINDS if k in s]
        return statistics.mean(xs) if xs else None
    summary["runs"][name] = {
        "steps": len(steps),
        "valid_rate_first_half": avg_of(first, "valid"), "valid_rate_second_half": avg_of(last, "valid"),
        "propose_reward_first_half": avg_of(first, "propose_reward"),
        "propose_reward_second_half": avg_of(last, "propose_reward"),
        "solve_acc_first_half": avg_of(first, "solve_acc"), "solve_acc_second_half": avg_of(last, "solve_acc"),
    }
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps({k: summary[k] for k in ("base", "true", "control")}, indent=1))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not available: no summary.png")
    sys.exit(0)

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
ax = axes[0]
w = 0.25
for i, (label, color) in enumerate([("base", "#888"), ("true", "#2a7"), ("control", "#c44")]):
    ys = [summary["base"][k] if label == "base" else summary[label][k]["mean"] for k in KINDS]
    ax.bar([j + (i - 1) * w for j in range(3)], [y or 0 for y in ys], w, label={"base": "base (pretrained)", "true": "self-play", "control": "shuffled-reward control"}[label], color=color)
    if label != "base":
        for j, k in enumerate(KINDS):
            for v in summary[label][k]["per_seed"]:
                ax.plot(j + (i - 1) * w, v, "k.", ms=4)
ax.set_xticks(range(3)); ax.set_xticklabels(KINDS)
ax.set_ylabel("held-out greedy accuracy"); ax.set_title("held-out accuracy after self-play (dots: seeds)")
ax.legend(fontsize=8)

def curve(ax, sub, title):
    for name, steps in sorted(runs.items()):
        xs = [s["step"] for s in steps]
        ys = [statistics.mean([s[k][sub] for k in KINDS if k in s]) for s in steps]
        win = 5
        sm = [statistics.mean(ys[max(0, i - win + 1):i + 1]) for i in range(len(ys))]
        ax.plot(xs, sm, color="#2a7" if name.startswith("true") else "#c44",
                ls="-" if name.endswith("seed1") else "--", label=name)
    ax.set_xlabel("step"); ax.set_title(title); ax.legend(fontsize=7)

curve(axes[1], "valid", "proposer valid-program rate (5-step mean)")
curve(axes[2], "propose_reward", "proposer reward (learnability; -1 invalid)")
fig.tight_layout()
fig.savefig(os.path.join(out, "summary.png"), dpi=90)
print("wrote", os.path.join(out, "summary.png"))
