#!/usr/bin/env bash
# The GPU figures in one call on a lent GPU machine (H100/H200 with its driver, no Rust there).
#
#   bash scripts/build-cuda.sh                         # here, on the CPU machine: .cudabin/azr.xz
#   bash scripts/gpu-check.sh OUTDIR                   # there: writes OUTDIR/summary.txt + JSON
#   bash scripts/gpu-check.sh --cpu-rehearsal OUTDIR   # anywhere: every stage at tiny sizes on
#                                                      # the CPU with target/release/azr (CI)
# STAGES="3 4a" (say) runs only those stages (default: all).
# Stages (each with its own time limit, 545 s in all, inside one 10-minute device call; a failed
# stage is logged and the next one runs; the exit status is the number of failed stages):
#   1. device facts;
#   2. parity of the shipped tiny model: greedy continuation on the device == on the CPU;
#   3a. a Qwen2.5-0.5B-shaped model (24 layers, d896, 14 heads / 2 KV heads, ffn 4864, vocab
#      151936, tied head, q/k/v bias; seeded random weights drawn on the host): greedy parity
#      device vs CPU in f32;
#   3b. the same shape in bf16: the rollout engine at batch 1/16/64/256 with batch-1 decode
#      against the HBM bound;
#   4a. PyTorch eager (the machine's python3, src/model/bench_reference.py in its own process,
#      so that no memory of ours is held) on the same shape in bf16: training at two batch
#      sizes, HF generate at the sampling batch sizes;
#   4. the same shape in bf16: our learner's tokens/s and MFU over a sweep of batch sizes up
#      to the largest that fits, our `generate` at the sampling batch sizes;
#   5. `azr bench pipeline` with the model and the learner on the device: staleness 1 vs 0.
# The registry-shipped Qwen2.5-Coder-0.5B GGUF (491 MB) cannot travel to the GPU machine (the
# working tree that travels is capped at 64 MiB), hence the seeded random weights of its shape.
set -uo pipefail
cd "$(dirname "$0")/.."
REHEARSAL=0
if [ "${1:-}" = "--cpu-rehearsal" ]; then REHEARSAL=1; shift; fi
OUT="${1:-${OUT:-gpu-out}}"
mkdir -p "$OUT"
: > "$OUT/summary.txt"
FAILED=0
log() { echo "=== $*" | tee -a "$OUT/summary.txt"; }
# stage NAME SECONDS CMD...: runs CMD with a time limit, output to the log and the summary.
stage() {
  local name="$1" secs="$2"; shift 2
  if [ -n "${STAGES:-}" ] && ! grep -qw -- "${name%%.*}" <<<"$STAGES"; then log "$name: skipped (STAGES=$STAGES)"; return; fi
  log "$name"
  local t0=$SECONDS
  # `bash -c` so that the shell functions below (exported) run under the time limit too.
  timeout --kill-after=10 "$secs" bash -c '"$@"' _ "$@" 2>>"$OUT/log.txt" | tee -a "$OUT/summary.txt"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then FAILED=$((FAILED + 1)); log "$name: FAILED (exit $rc after $((SECONDS - t0)) s)";
  else log "$name: ok ($((SECONDS - t0)) s)"; fi
}

if [ "$REHEARSAL" = 1 ]; then
  B="${AZR_BIN:-target/release/azr}"
  DEV=cpu DTYPE=f32 PEAK=1.0 HBM=20 PY="${REFERENCE_PYTHON:-}"
  SHAPE='name = "rehearsal-shape"
hidden = 64
layers = 2
heads = 4
kv_heads = 2
ffn = 128
vocab = 256
tie_embeddings = true
attention_bias = true'
  TRAIN_SEQ=32 TRAIN_BATCHES="[2, 4]" REF_BATCHES="2 4" ENGINE="[1, 4]" SAMPLE="[1, 4]" NEW=8
  ENGINE_NEW=8 PROMPT=8 PARITY=6
  PIPE_STEPS=2
else
  B=.cudabin/azr
  if [ ! -x "$B" ]; then
    xz -dkf .cudabin/azr.xz 2>/dev/null || python3 -c 'import lzma, shutil; shutil.copyfileobj(lzma.open(".cudabin/azr.xz"), open(".cudabin/azr", "wb"))'
    chmod +x "$B"
  fi
  DEV=cuda:0 DTYPE=bf16 PY="${REFERENCE_PYTHON:-python3}"
  # H100/H200 SXM datasheet: 989 TFLOP/s dense bf16; HBM 4,800 GB/s (H200) / 3,350 (H100).
  PEAK=989 HBM=4800
  if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H100; then HBM=3350; fi
  SHAPE='name = "qwen2.5-0.5b-shape"
hidden = 896
layers = 24
heads = 14
kv_heads = 2
ffn = 4864
vocab = 151936
tie_embeddings = true
attention_bias = true'
  TRAIN_SEQ=512 TRAIN_BATCHES="[8, 16, 32, 64]" REF_BATCHES="16" ENGINE="[1, 16, 64, 256]"
  SAMPLE="[1, 64]" NEW=128 PROMPT=64 PARITY=32 PIPE_STEPS=4
  # The engine samples on the host (logits of every row copied back each step), so its step
  # time grows with the batch: 32 new tokens keep batch 256 inside the stage's limit.
  ENGINE_NEW=32
  # The CUDA 13 user-space libraries come with the machine's PyTorch wheels.
  CU13=$(python3 -c 'import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],"cu13","lib"))' 2>/dev/null)
  [ -e "$CU13/libcublas.so.13" ] || CU13=$(dirname "$(find / -name libcublas.so.13 2>/dev/null | head -1)")
  export LD_LIBRARY_PATH="$CU13:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
fi
# Each sweep point is also logged as it is measured, so a crash keeps the points before it.
export RUST_LOG="${RUST_LOG:-warn,azr_core::model::bench=info,azr_core::model::bench_device=info}"
export B DEV OUT REHEARSAL PIPE_STEPS
[ -x "$B" ] || { log "no binary at $B"; exit 1; }

facts() {
  if [ "$REHEARSAL" = 1 ]; then echo "cpu rehearsal: $(nproc) cores, $(uname -m)";
  else nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm --format=csv
       ldd "$B" | grep -E 'libcu|not found'; fi
  echo "binary: $B ($("$B" --version 2>/dev/null || echo '?'))"
}
export -f facts
stage "1. device" 15 facts

tiny_parity() {
  local prompt=$'<prog>def f(a, b):\n return a * 3 - b\n<in>7, 4<out>'
  "$B" generate --model assets/tiny-base --prompt "$prompt" --max-tokens 48 --device cpu > "$OUT/gen-cpu.txt" || return 1
  "$B" generate --model assets/tiny-base --prompt "$prompt" --max-tokens 48 --device "$DEV" > "$OUT/gen-dev.txt" || return 1
  if cmp -s "$OUT/gen-cpu.txt" "$OUT/gen-dev.txt"; then echo "tiny model: identical greedy continuations (48 tokens, f32)";
  else echo "tiny model: DIFFERENT continuations"; diff "$OUT/gen-cpu.txt" "$OUT/gen-dev.txt"; return 1; fi
}
export -f tiny_parity
stage "2. parity: the shipped tiny model, greedy on cpu vs $DEV (f32)" 45 tiny_parity

common() {
  cat <<EOF
device = "$DEV"
dtype = "$DTYPE"
train_seq = $TRAIN_SEQ
train_steps = 3
prompt_len = $PROMPT
new_tokens = $NEW
no_cache = false
baseline = false
seed = 0
peak_tflops = $PEAK
hbm_gbps = $HBM
EOF
}
{ common; cat <<EOF
train_batch = 2
sample_batches = []
parity_tokens = $PARITY

[[models]]
$SHAPE
EOF
} > "$OUT/bench-parity.toml"
{ common | sed "s/^new_tokens = .*/new_tokens = $ENGINE_NEW/"; cat <<EOF
train_batch = 2
sample_batches = []
engine_batches = $ENGINE

[[models]]
$SHAPE
EOF
} > "$OUT/bench-engine.toml"
{ common; cat <<EOF
train_batch = 8
train_batches = $TRAIN_BATCHES
sample_batches = $SAMPLE
EOF
  printf '\n[[models]]\n%s\n' "$SHAPE"
} > "$OUT/bench-train.toml"
NAME=$(sed -n 's/^name = "\(.*\)"$/\1/p' <<<"$SHAPE")
stage "3a. $NAME: greedy parity $DEV vs cpu (f32)" 130 \
  "$B" bench model --config "$OUT/bench-parity.toml" --out "$OUT/bench-parity.json"
stage "3b. $NAME: rollout engine sweep ($DTYPE, $ENGINE_NEW new tokens)" 110 \
  "$B" bench model --config "$OUT/bench-engine.toml" --out "$OUT/bench-engine.json"
reference() {
  [ -n "$PY" ] || { echo "no Python with torch given (REFERENCE_PYTHON): skipped"; return 0; }
  local b spec
  for b in $REF_BATCHES; do
    # The spec of the PyTorch script: our learner stage's config (the same shape, dtype, device,
    # lengths and sampling batches), at train batch $b.
    spec=$(python3 - "$b" "$OUT/bench-train.toml" <<'PY'
import json, os, sys, tomllib
b, path = sys.argv[1:]
c = tomllib.load(open(path, "rb"))
keys = ("seed", "dtype", "device", "train_seq", "train_steps", "sample_batches", "prompt_len",
        "new_tokens", "models")
print(json.dumps({"threads": os.cpu_count(), "train_batch": int(b), **{k: c[k] for k in keys}}))
PY
)
    "$PY" src/model/bench_reference.py "$spec" | tee -a "$OUT/reference.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    gen = ", ".join("generate b%d %.0f tok/s" % (x["batch"], x["tokens_per_s"]) for x in r["sampling"])
    print("PyTorch %s eager, train batch %d: %.0f tok/s (%.3f s/step); %s"
          % (r["torch"], int(sys.argv[1]), r["train_tokens_per_s"], r["train_step_s"], gen))
' "$b" || return 1
  done
}
export -f reference
export PY REF_BATCHES
stage "4a. PyTorch eager reference ($DTYPE, seq $TRAIN_SEQ, batches $REF_BATCHES)" 100 reference
stage "4. learner sweep ($DTYPE, seq $TRAIN_SEQ)" 100 \
  "$B" bench model --config "$OUT/bench-train.toml" --out "$OUT/bench-train.json"

pipeline() {
  sed -e "s/^device = \"cpu\"/device = \"$DEV\"/" -e 's/^max_steps = .*/max_steps = 0/' config/default.toml > "$OUT/pipeline.toml"
  if ! command -v bwrap >/dev/null; then
    echo "no bubblewrap on this machine: the executor runs with require_sandbox = false here (isolation is not what this stage measures)"
    sed -i 's/^require_sandbox = true/require_sandbox = false/' "$OUT/pipeline.toml"
  fi
  "$B" bench pipeline --config "$OUT/pipeline.toml" --steps "$PIPE_STEPS" --out "$OUT/bench-pipeline.json" >>"$OUT/log.txt" || return 1
  python3 - "$OUT/bench-pipeline.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("overlap", "on_policy"):
    v = r.get(k, {})
    print(f"{k}: {v.get('samples_per_second', float('nan')):.2f} trained samples/s, {v.get('step_seconds', float('nan')):.2f} s/step, learner idle {v.get('trainer_idle_ratio', float('nan')):.2f}")
print({k: r[k] for k in r if not isinstance(r[k], (dict, list))})
PY
}
export -f pipeline
stage "5. pipeline on $DEV: staleness 1 vs 0, $PIPE_STEPS steps each" 60 pipeline
log "done: $FAILED stage(s) failed"
exit "$FAILED"
