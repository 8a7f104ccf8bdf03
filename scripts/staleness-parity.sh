#!/usr/bin/env bash
# Learning parity of bounded staleness: the default self-play config trained for STEPS steps (the same number
# of trained samples) with run.staleness 1 and 0, for each seed in SEEDS, then held-out accuracy (greedy,
# LIMIT items per held-out kind, scored by the in-run evaluator at the last step) per run, the mean of the
# three kinds with its binomial standard error, and the S=1 - S=0 difference.
# Usage: scripts/staleness-parity.sh [OUT_DIR]   (env: STEPS=30 SEEDS="1 2" LIMIT=150 AZR=target/release/azr)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/staleness-parity}
steps=${STEPS:-30}
seeds=${SEEDS:-1 2}
limit=${LIMIT:-150}
azr=${AZR:-target/release/azr}
mkdir -p "$out"
for seed in $seeds; do
    for s in 1 0; do
        d="$out/s$s-seed$seed"
        rm -rf "$d"
        start=$(date +%s)
        "$azr" run --max-steps "$steps" --run-dir "$d" --staleness "$s" \
            --set run.seed="$seed" --set evaluator.every="$steps" --set evaluator.limit="$limit" \
            --set metrics.enabled=false --set run.checkpoint_every="$steps" >"$d.log" 2>&1
        echo "seed=$seed S=$s: $(($(date +%s) - start)) s"
    done
done
python3 - "$out" <<'PY'
import json, math, pathlib, sys
root = pathlib.Path(sys.argv[1])
def score(d):
    evs = [json.loads(l) for l in (d / "eval.jsonl").read_text().splitlines() if l.strip()]
    evs = [e for e in evs if e.get("step") is not None]
    last = max(e["policy_version"] for e in evs)
    accs = {e["benchmark"]: (e["accuracy"], e["items"]) for e in evs if e["policy_version"] == last}
    mean = sum(a for a, _ in accs.values()) / len(accs)
    se = math.sqrt(sum(a * (1 - a) / n for a, n in accs.values())) / len(accs)
    return accs, mean, se
agg = {}
for s in (1, 0):
    runs = sorted(root.glob(f"s{s}-seed*/eval.jsonl"))
    scored = [score(r.parent) for r in runs]
    for r, (accs, m, se) in zip(runs, scored):
        kinds = " ".join(f"{k.removeprefix('heldout-')}={a:.3f}" for k, (a, _) in sorted(accs.items()))
        print(f"{r.parent.name}: {kinds} mean={100 * m:.1f}% se={100 * se:.1f}")
    m = sum(x for _, x, _ in scored) / len(scored)
    se = math.sqrt(sum(y * y for _, _, y in scored)) / len(scored)
    agg[s] = (m, se)
    print(f"S={s}: {100 * m:.2f}% +- {100 * se:.2f} (binomial SE, {len(scored)} seeds)")
(m1, s1), (m0, s0) = agg[1], agg[0]
print(f"S=1 - S=0: {100 * (m1 - m0):+.2f} points, SE {100 * math.sqrt(s1 * s1 + s0 * s0):.2f}")
PY
