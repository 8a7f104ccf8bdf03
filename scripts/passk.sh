#!/usr/bin/env bash
# Sampled accuracy (avg@K) and pass@K at temperature 1 on the full validation or held-out sets,
# to tell sharpening (avg@K rises towards pass@K) from new capability (pass@K rises).
#   bash scripts/passk.sh SPLIT LABEL=WEIGHTS...     (SPLIT: valid or heldout; WEIGHTS: base,
#                                                    a checkpoint or a run directory)
#   env: K (default 8), OUT (default runs/passk)
# Prints and appends to OUT/SPLIT.txt one "<label> <kind> <avg@K> <pass@K> <items>" line per kind.
set -euo pipefail
cd "$(dirname "$0")/.."
SPLIT=${1:?usage: passk.sh SPLIT LABEL=WEIGHTS...}; shift
K=${K:-8}; OUT=${OUT:-runs/passk}
AZR=${AZR:-target/release/azr}
[ -x "$AZR" ] || cargo build --release -p azr
mkdir -p "$OUT"
# The embedded default with the evaluator sampling K answers per item at temperature 1.
cfg="$OUT/sampled-$K.toml"
sed -e 's/^temperature = 0\.0 *$/temperature = 1.0/' -e "s/^samples = 1 *$/samples = $K/" \
  config/default.toml > "$cfg"
grep -q "^samples = $K" "$cfg" || { echo "could not set evaluator.samples in $cfg" >&2; exit 1; }
for v in "$@"; do
  label=${v%%=*}; w=${v#*=}
  ck=(); [ "$w" = base ] || ck=(--checkpoint "$w")
  for kind in deduction abduction induction; do
    RAYON_NUM_THREADS=1 "$AZR" eval --config "$cfg" --benchmark "$SPLIT-$kind" --limit 0 "${ck[@]}" \
      2>/dev/null | sed -n "s/^$SPLIT-$kind: accuracy \([0-9.]*\) (\([0-9]*\) items.*pass@$K \([0-9.]*\)$/$label $kind \1 \3 \2/p"
  done
done | tee -a "$OUT/$SPLIT.txt"
