#!/usr/bin/env bash
# CPU demonstration of 1-shot RLVR at small scale (two-digit addition, ~0.3 M-parameter model).
#  1. pretrain the micro model and write the RLVR pool (128 problems) and held-out set (400);
#  2. RLVR on the whole pool, recording each problem's training accuracy per epoch;
#  3. rank the pool by the variance of that history (`azr select`) and take the top problem;
#  4. RLVR on that single problem from the same base model, same steps, batch and samples;
#  5. held-out greedy accuracy of both, at the start and every 20 steps (eval.jsonl in each run
#     directory: the in-run evaluator, one pinned weight version per evaluation).
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1} RUST_LOG=${RUST_LOG:-warn}
STEPS=${STEPS:-40}
OUT=runs/demo
cargo build --release -p azr-core --example arith_base
cargo build --release -p azr
AZR=target/release/azr
[ -d "$OUT/base/model" ] || target/release/examples/arith_base "$OUT/base" 1200 0
rm -rf "$OUT/full" "$OUT/one"
$AZR rlvr --config config/one-shot-tiny.toml --examples all --max-steps "$STEPS" --run-dir "$OUT/full"
$AZR select --history "$OUT/full/accuracy_history.json" --top 5 --dataset "$OUT/base/train.jsonl"
PI1=$($AZR select --history "$OUT/full/accuracy_history.json" --top 1 | tail -n 1 | cut -f2)
$AZR rlvr --config config/one-shot-tiny.toml --examples "$PI1" --max-steps "$STEPS" --run-dir "$OUT/one"
echo "held-out greedy accuracy (weights version = steps trained, accuracy):"
for r in full one; do
  echo "$r: $(python3 -c "import json,sys; print(' '.join('%d:%.3f' % (j['policy_version'], j['accuracy']) for j in sorted(map(json.loads, open('$OUT/$r/eval.jsonl')), key=lambda j: j['policy_version'])))")"
done
