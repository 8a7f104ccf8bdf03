#!/usr/bin/env bash
# Self-play vs a shuffled-reward control on the shipped tiny model, several seeds, same step budget.
#   bash scripts/selfplay-demo.sh [STEPS] [SEEDS...]      (default: 120 steps, seeds 1 2)
#   env: KEEP=1 continues existing runs from their checkpoints instead of starting over;
#        OUT (default runs/selfplay-demo); EXTRA: more `--set KEY=VALUE` overrides for both arms
#        (e.g. EXTRA="--set selfplay.train_estimator_samples=true"); ARMS (default "true control":
#        which arms to run; with the true arm alone, the scores are written but no summary);
#        PORT (metrics ports PORT+1.., default 19500; give concurrent demos distinct ones);
#        CONFIG (a config file for every run and score instead of the embedded default, e.g.
#        config/chain.toml: its `model.path` is then the base and holds the held-out sets)
# Each run is `azr run` on the embedded default (config/default.toml) with its own seed and no
# rollout dumps; the control differs only by `learner.shuffle_rewards = true` (rewards permuted
# within each task x role before advantages), so a gain over it is due to the reward signal.
# All runs go in parallel, one compute thread each. Then every final checkpoint and the base model
# are scored greedily on the full held-out sets (assets/tiny-base/heldout.jsonl) with `azr eval`,
# and runs/selfplay-demo/summary.json + .png are written.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-120}"; shift || true
SEEDS=("${@:-1 2}"); [ $# -eq 0 ] && SEEDS=(1 2)
OUT=${OUT:-runs/selfplay-demo}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
AZR=${AZR:-target/release/azr}
[ -x "$AZR" ] || cargo build --release -p azr
mkdir -p "$OUT"
cfg=(); [ -z "${CONFIG:-}" ] || cfg=(--config "$CONFIG")
port=${PORT:-19500}
pids=()
read -r -a ARM_LIST <<< "${ARMS:-true control}"
for seed in "${SEEDS[@]}"; do
  for arm in "${ARM_LIST[@]}"; do
    shuffle=false; [ "$arm" = control ] && shuffle=true
    [ -n "${KEEP:-}" ] || rm -rf "$OUT/$arm-seed$seed"
    port=$((port + 1))
    RAYON_NUM_THREADS=1 "$AZR" run "${cfg[@]}" --max-steps "$STEPS" --run-dir "$OUT/$arm-seed$seed" \
      --metrics-addr "127.0.0.1:$port" \
      --set run.seed="$seed" --set learner.shuffle_rewards="$shuffle" \
      --set run.dump_rollouts=false "${EXTRA_ARGS[@]}" \
      > "$OUT/$arm-seed$seed.log" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
echo "runs done; scoring"
score() { # weights label (KINDS: the held-out kinds to score; see score-kinds.sh)
  AZR="$AZR" CONFIG="${CONFIG:-}" bash scripts/score-kinds.sh heldout "$2" "$1" > "$OUT/score-$2.txt"
}
labels=(base); dirs=(base)
for seed in "${SEEDS[@]}"; do for arm in "${ARM_LIST[@]}"; do
  labels+=("$arm-seed$seed"); dirs+=("$OUT/$arm-seed$seed")
done; done
for i in "${!labels[@]}"; do # two at a time (one per core)
  score "${dirs[$i]}" "${labels[$i]}" &
  if (( i % 2 == 1 )); then wait; fi
done
wait
for l in "${labels[@]}"; do cat "$OUT/score-$l.txt"; done | tee "$OUT/scores.txt"
[ "${#ARM_LIST[@]}" -eq 2 ] || { echo "one arm: no summary"; exit 0; }
"${PLOT_PYTHON:-python3}" scripts/selfplay-summary.py "$OUT"
