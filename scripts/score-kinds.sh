#!/usr/bin/env bash
# Greedy accuracy of one model on the full SPLIT-{deduction,abduction,induction} sets of the tiny
# model (SPLIT: heldout, valid or chain), one "<label> <kind> <accuracy> <items>" line per kind.
#   bash scripts/score-kinds.sh SPLIT LABEL WEIGHTS
#   WEIGHTS: `base` (the shipped model, `model.path`), a checkpoint or a run directory (its latest
#   checkpoint). env: AZR (default target/release/azr), KINDS (default: the three kinds), ITEMS (a
#   directory: also write each item's result to ITEMS/LABEL-KIND.jsonl, for score-families.py),
#   CONFIG (a config whose `model.path` is the base and holds the sets, e.g. config/chain.toml;
#   default: the embedded default, assets/tiny-base).
# Used by selfplay-demo.sh and selfplay-sweep.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SPLIT=${1:?usage: score-kinds.sh SPLIT LABEL WEIGHTS}; LABEL=${2:?}; WEIGHTS=${3:?}
AZR=${AZR:-target/release/azr}
ck=(); [ "$WEIGHTS" = base ] || ck=(--checkpoint "$WEIGHTS")
[ -z "${CONFIG:-}" ] || ck+=(--config "$CONFIG")
[ -z "${ITEMS:-}" ] || mkdir -p "$ITEMS"
err=$(mktemp); trap 'rm -f "$err"' EXIT
for kind in ${KINDS:-deduction abduction induction}; do
  items=(); [ -z "${ITEMS:-}" ] || items=(--items "$ITEMS/$LABEL-$kind.jsonl")
  # A score that does not come back (an eval that failed, seen once under heavy load) is taken
  # once more; a second failure stops the script with the eval's error.
  for try in 1 2; do
    line=$(RAYON_NUM_THREADS=1 "$AZR" eval --benchmark "$SPLIT-$kind" --limit 0 "${ck[@]}" "${items[@]}" 2>"$err" \
      | sed -n "s/^$SPLIT-$kind: accuracy \([0-9.]*\) (\([0-9]*\) items.*/$LABEL $kind \1 \2/p") || true
    [ -n "$line" ] && break
    echo "score-kinds: no score for $LABEL $kind (try $try):" >&2; grep -v "^ " "$err" | grep -v "Stack backtrace" | tail -3 >&2
  done
  [ -n "$line" ] || exit 1
  echo "$line"
done
