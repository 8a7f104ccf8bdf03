#!/usr/bin/env python3
"""Summarise a long run (scripts/long-run.sh): memory and step time over the run.

    python3 scripts/long-run-summary.py RUN_DIR

Reads RUN_DIR/run.log (the learner's step lines, with their timestamps) and RUN_DIR/proc.tsv (the
watcher's samples of resident memory and CPU time), writes RUN_DIR/summary.json and, when
matplotlib is available, RUN_DIR/long-run.png. Memory: least-squares slope of the main process's
resident memory after warm-up (the first 10 % of the run's time), in MiB per hour. Step time: the
median wall seconds and CPU seconds (whole process tree, interpolated at the step lines) per step in
the first and the last quarter of the steps. CPU seconds per step do not depend on other load on the
machine; wall seconds do.
"""
import json
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

STEP = re.compile(r"^(\S+Z)\s.*\bstep\s+(\d+) v(\d+) \|.*\| rss (\d+) MiB")


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")


def interp(t, xs, ys):
    if t <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if t <= xs[i]:
            f = (t - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + f * (ys[i] - ys[i - 1])
    return ys[-1]


def main(run_dir):
    d = Path(run_dir)
    steps = []  # (t, step, rss_mib)
    for line in (d / "run.log").read_text(errors="replace").splitlines():
        m = STEP.match(line)
        if m:
            steps.append((ts(m.group(1)), int(m.group(2)), int(m.group(4))))
    # A step line can be logged twice (a checkpoint re-logs it): keep the first of each step.
    seen, uniq = set(), []
    for s in steps:
        if s[1] not in seen:
            seen.add(s[1])
            uniq.append(s)
    steps = uniq
    rows = [l.split("\t") for l in (d / "proc.tsv").read_text().splitlines()[1:] if l.strip()]
    pt = [float(r[0]) for r in rows]
    rss = [int(r[1]) / 1024 for r in rows]
    cpu = [int(r[3]) / 100.0 for r in rows]  # CLK_TCK = 100 (written to clk.txt)
    if len(steps) < 8 or len(rows) < 8:
        sys.exit(f"too little data: {len(steps)} steps, {len(rows)} samples")
    t0, t1 = pt[0], pt[-1]
    warm = t0 + 0.1 * (t1 - t0)
    after = [(t, r) for t, r in zip(pt, rss) if t >= warm]
    mem_slope_h = slope([t / 3600 for t, _ in after], [r for _, r in after])
    wall = [steps[i][0] - steps[i - 1][0] for i in range(1, len(steps))]
    cpu_at = [interp(s[0], pt, cpu) for s in steps]
    cpus = [cpu_at[i] - cpu_at[i - 1] for i in range(1, len(steps))]
    q = max(1, len(wall) // 4)

    def med(v):
        return round(statistics.median(v), 3)

    out = {
        "minutes": round((t1 - t0) / 60, 1),
        "steps": len(steps),
        "last_step": steps[-1][1],
        "rss_mib": {
            "start": round(rss[1] if len(rss) > 1 else rss[0], 1),
            "after_warmup_first": round(after[0][1], 1),
            "max": round(max(rss), 1),
            "end": round(rss[-1], 1),
            "slope_after_warmup_mib_per_hour": round(mem_slope_h, 2),
        },
        "wall_s_per_step": {"first_quarter_median": med(wall[:q]), "last_quarter_median": med(wall[-q:])},
        "cpu_s_per_step": {"first_quarter_median": med(cpus[:q]), "last_quarter_median": med(cpus[-q:])},
    }
    for k in ("wall_s_per_step", "cpu_s_per_step"):
        a, b = out[k]["first_quarter_median"], out[k]["last_quarter_median"]
        out[k]["change_pct"] = round(100 * (b - a) / a, 1) if a else None
    (d / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].plot([(t - t0) / 60 for t in pt], rss)
    ax[0].set(xlabel="minutes", ylabel="resident MiB (azr process)", title="memory")
    ax[1].plot([s[1] for s in steps[1:]], wall, ".", ms=2)
    ax[1].set(xlabel="step", ylabel="wall s / step", title="wall time per step (depends on load)")
    ax[2].plot([s[1] for s in steps[1:]], cpus, ".", ms=2)
    ax[2].set(xlabel="step", ylabel="CPU s / step", title="CPU time per step (process tree)")
    fig.tight_layout()
    fig.savefig(d / "long-run.png", dpi=90)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/long")
