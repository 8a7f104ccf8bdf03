#!/usr/bin/env bash
# Tune self-play on the validation split: one run per variant, same seed, then greedy accuracy of
# each final checkpoint (and the base model) on the full validation sets (assets/tiny-base/
# validation.jsonl, drawn with another seed than the held-out set; nothing here reads heldout).
#   bash scripts/selfplay-sweep.sh STEPS NAME=OVERRIDES...
#   e.g. bash scripts/selfplay-sweep.sh 80 "lr5e-5=--set learner.optimizer.lr=5e-5" \
#          "rep05=--set learner.optimizer.lr=5e-5 --set tasks.rewards.repetition=0.5"
#   env: OUT (default runs/selfplay-sweep), SEED (default 100), PORT (metrics ports PORT+1..,
#        default 19700; give concurrent sweeps distinct ones), EXTRA (overrides for every
#        variant, default: the estimator-samples lever, rollout dumps, in-run validation every 20),
#        CONFIG (a config file for every run and score, e.g. config/chain.toml; default: the
#        embedded default, whose base is assets/tiny-base)
# All variants run in parallel, one compute thread each. Writes OUT/valid-scores.txt
# ("<name> <kind> <accuracy> <items>") and OUT/summary.txt (mean of the 3 kinds, minus the base).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:?usage: selfplay-sweep.sh STEPS NAME=OVERRIDES...}"; shift
[ $# -gt 0 ] || { echo "no variants given" >&2; exit 2; }
OUT=${OUT:-runs/selfplay-sweep}
SEED=${SEED:-100}
EXTRA=${EXTRA:-'--set selfplay.train_estimator_samples=true --set run.dump_rollouts=true --set evaluator.every=20 --set evaluator.benchmarks=["valid-deduction","valid-abduction","valid-induction"]'}
read -r -a EXTRA_ARGS <<< "$EXTRA"
AZR=${AZR:-target/release/azr}
[ -x "$AZR" ] || cargo build --release -p azr
mkdir -p "$OUT"
cfg=(); [ -z "${CONFIG:-}" ] || cfg=(--config "$CONFIG")
names=(); pids=(); port=${PORT:-19700}
for v in "$@"; do
  name=${v%%=*}; read -r -a over <<< "${v#*=}"
  names+=("$name"); port=$((port + 1))
  rm -rf "${OUT:?}/$name"
  RAYON_NUM_THREADS=1 "$AZR" run "${cfg[@]}" --max-steps "$STEPS" --run-dir "$OUT/$name" \
    --metrics-addr "127.0.0.1:$port" --set run.seed="$SEED" "${EXTRA_ARGS[@]}" "${over[@]}" \
    > "$OUT/$name.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
score() { AZR="$AZR" CONFIG="${CONFIG:-}" bash scripts/score-kinds.sh valid "$1" "$2"; } # label weights
{ score base base; for n in "${names[@]}"; do score "$n" "$OUT/$n"; done; } | tee "$OUT/valid-scores.txt"
awk '{ s[$1] += $3; n[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
     END { for (i = 1; i <= k; i++) { m = 100 * s[order[i]] / n[order[i]]; if (i == 1) b = m;
           printf "%-24s mean of 3 kinds %.2f %%  (base %+.2f)\n", order[i], m, m - b } }' \
  "$OUT/valid-scores.txt" | tee "$OUT/summary.txt"
