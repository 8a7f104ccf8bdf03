#!/usr/bin/env bash
# Score weight-space interpolations between the base model and each run's final checkpoint
# (scripts/interpolate-weights.py) on the full SPLIT sets, one "<run>@<alpha> <kind> <accuracy>
# <items>" line per kind (score-kinds.sh's format).
#   bash scripts/interpolate-sweep.sh SPLIT RUN_DIR...      (SPLIT: valid or heldout)
#   env: ALPHAS (default "0.25 0.5 0.75 1.0 1.5 2.0"), PYTHON (one with numpy and safetensors,
#        default python3), AZR (default target/release/azr)
set -euo pipefail
cd "$(dirname "$0")/.."
SPLIT=${1:?usage: interpolate-sweep.sh SPLIT RUN_DIR...}; shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for run in "$@"; do
  for a in ${ALPHAS:-0.25 0.5 0.75 1.0 1.5 2.0}; do
    rm -rf "$tmp/ck"
    "${PYTHON:-python3}" scripts/interpolate-weights.py assets/tiny-base "$run" "$a" "$tmp/ck"
    label="$(echo "${run#runs/}" | tr / :)@$a"
    bash scripts/score-kinds.sh "$SPLIT" "$label" "$tmp/ck"
  done
done
