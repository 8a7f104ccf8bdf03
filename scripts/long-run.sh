#!/usr/bin/env bash
# A long self-play run on the embedded default, watched from outside for memory and step time.
#   bash scripts/long-run.sh [MINUTES] [RUN_DIR]        (default: 125 minutes, runs/long)
# Runs `azr run` (no step limit, no rollout dumps, one compute thread) for MINUTES, then stops it
# with SIGTERM (it checkpoints and exits). Every 10 s the watcher appends the process tree's
# resident memory and CPU time (from /proc) to RUN_DIR/proc.tsv; afterwards
# scripts/long-run-summary.py turns the step log and proc.tsv into RUN_DIR/summary.json and a plot:
# memory slope, wall time and CPU time per step, first vs last quarter. CPU seconds per step do not
# depend on what else runs on the machine; wall time does, so both are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-125}"
DIR="${2:-runs/long}"
AZR=${AZR:-target/release/azr}
[ -x "$AZR" ] || cargo build --release -p azr
rm -rf "$DIR"; mkdir -p "$DIR"
git rev-parse HEAD > "$DIR/commit.txt" 2>/dev/null || true
RAYON_NUM_THREADS=1 "$AZR" run --run-dir "$DIR/run" --metrics-addr "127.0.0.1:${PORT:-19650}" \
  --set run.dump_rollouts=false --set run.max_steps=0 "${@:3}" > "$DIR/run.log" 2>&1 &
pid=$!
tree_stat() { # "rss_kib cpu_ticks" summed over the process and its descendants
  local pids=("$1") all=() p
  while [ ${#pids[@]} -gt 0 ]; do
    p=${pids[0]}; pids=("${pids[@]:1}"); all+=("$p")
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do pids+=("$c"); done
  done
  local rss=0 cpu=0 s
  for p in "${all[@]}"; do
    s=$(awk '/^VmRSS/{print $2}' /proc/"$p"/status 2>/dev/null || true); rss=$((rss + ${s:-0}))
    s=$(awk '{print $14+$15+$16+$17}' /proc/"$p"/stat 2>/dev/null || true); cpu=$((cpu + ${s:-0}))
  done
  echo "$rss $cpu"
}
echo -e "unix_s\trss_kib_main\trss_kib_tree\tcpu_ticks_tree" > "$DIR/proc.tsv"
end=$(( $(date +%s) + MINUTES * 60 ))
while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
  main=$(awk '/^VmRSS/{print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
  read -r rss cpu < <(tree_stat "$pid")
  echo -e "$(date +%s.%N)\t$main\t$rss\t$cpu" >> "$DIR/proc.tsv"
  sleep 10
done
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
echo "clock ticks per second: $(getconf CLK_TCK)" > "$DIR/clk.txt"
"${PLOT_PYTHON:-python3}" scripts/long-run-summary.py "$DIR"
