#!/usr/bin/env bash
# 1-shot RLVR at small scale against the controls of the "Spurious Rewards" critique: the same
# runs with a random reward (Bernoulli 0.5, `tasks.rewards.control = "random"`) and a format-only
# reward (`"format"`), several seeds, the learning rate tuned on a validation split.
#   bash scripts/one-shot-controls.sh [SEEDS...]        (default seeds 1 2 3)
#   env: STEPS (default 60), LRS (grid tuned on validation, default "3e-5 3e-4 1e-3"), OUT
#  1. the micro arithmetic base model, its 128-problem pool, held-out (400) and validation (400)
#     sets (examples/arith_base.rs, as scripts/one-shot-demo.sh);
#  2. RLVR on the whole pool (true reward) to get each problem's accuracy history, and
#     `azr select` ranks it: pi_1 is the top problem;
#  3. the learning rate: pi_1, true reward, seed 100, each lr of LRS scored on the VALIDATION set
#     only; the best final validation accuracy wins (ties: the smaller lr);
#  4. pi_1 with that lr for every seed x {true, random, format}, scored on the held-out set
#     (greedy, the pinned weights of version 0 and every 20 steps: eval.jsonl);
#  5. scripts/one-shot-controls-summary.py: final held-out accuracy per arm (mean, SE over seeds)
#     and the paired differences true - random, true - format, true - base.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1} RUST_LOG=${RUST_LOG:-warn}
STEPS=${STEPS:-60}
LRS=${LRS:-"3e-5 3e-4 1e-3"}
SEEDS=("${@:-1 2 3}"); [ $# -eq 0 ] && SEEDS=(1 2 3)
OUT=${OUT:-runs/controls}
BASE=runs/demo/base
cargo build --release -p azr-core --example arith_base
[ -n "${AZR:-}" ] || cargo build --release -p azr
AZR=${AZR:-target/release/azr}
[ -f "$BASE/validation.jsonl" ] || target/release/examples/arith_base "$BASE" 1200 0
mkdir -p "$OUT"
rlvr() { # run-dir extra-args...: one RLVR run (its log next to it)
  local dir=$1; shift
  rm -rf "$dir"
  "$AZR" rlvr --config config/one-shot-tiny.toml --max-steps "$STEPS" --run-dir "$dir" "$@" \
    > "$dir.log" 2>&1
}
final_acc() { # run-dir: accuracy of the last evaluated version
  python3 -c "import json; r=sorted(map(json.loads, open('$1/eval.jsonl')), key=lambda j: j['policy_version']); print(r[-1]['accuracy'])"
}

rlvr "$OUT/pool" --examples all
PI1=$("$AZR" select --history "$OUT/pool/accuracy_history.json" --top 1 | tail -n 1 | cut -f2)
echo "pi_1 = $PI1" | tee "$OUT/pi1.txt"

VALID=(--set "evaluator.benchmarks=[\"$BASE/validation.jsonl\"]")
HELD=(--set "evaluator.benchmarks=[\"$BASE/heldout.jsonl\"]")
pids=()
for lr in $LRS; do
  rlvr "$OUT/tune-lr$lr" --examples "$PI1" --set run.seed=100 --set learner.optimizer.lr="$lr" "${VALID[@]}" &
  pids+=($!)
  if (( ${#pids[@]} == 2 )); then wait "${pids[@]}"; pids=(); fi
done
wait "${pids[@]}" 2>/dev/null || true
best=""; best_acc=-1
for lr in $LRS; do
  acc=$(final_acc "$OUT/tune-lr$lr")
  echo "lr $lr: validation accuracy $acc" | tee -a "$OUT/tuning.txt"
  if python3 -c "import sys; sys.exit(0 if $acc > $best_acc else 1)"; then best=$lr; best_acc=$acc; fi
done
echo "chosen lr $best (validation $best_acc)" | tee -a "$OUT/tuning.txt"

pids=()
for seed in "${SEEDS[@]}"; do
  for arm in none random format; do
    rlvr "$OUT/$arm-seed$seed" --examples "$PI1" --set run.seed="$seed" \
      --set learner.optimizer.lr="$best" --set tasks.rewards.control="$arm" "${HELD[@]}" &
    pids+=($!)
    if (( ${#pids[@]} == 2 )); then wait "${pids[@]}"; pids=(); fi
  done
done
wait "${pids[@]}" 2>/dev/null || true
python3 scripts/one-shot-controls-summary.py "$OUT" "${SEEDS[@]}"
