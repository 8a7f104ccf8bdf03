#!/usr/bin/env bash
# One-shot device check for a lent GPU machine (H100/H200, driver present, no Rust toolchain).
# Prepare on the CPU machine:  bash scripts/build-cuda.sh   (-> .cudabin/azr.xz, carried with the tree)
# Run on the GPU machine:      bash scripts/gpu-check.sh     (writes results under ${OUT:-gpu-out}/)
# Steps (well inside 8 minutes):
#   1. GPU/driver facts, CUDA user-space libraries from the machine's PyTorch wheels.
#   2. Parity: the shipped tiny model, greedy continuation on cuda:0 (f32) == on the CPU.
#   3. `azr bench model` on a Qwen2.5-0.5B-shaped config in bf16: training tokens/s, MFU against
#      the card's bf16 dense peak, sampling tokens/s at batch 1/16/64.
#   4. `azr bench pipeline`: a few self-play steps with the learner on the GPU, overlap
#      (staleness 1) vs on-policy (staleness 0), per-step wall times.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"; mkdir -p "$OUT"
B=.cudabin/azr
if [ ! -x "$B" ]; then xz -dkf .cudabin/azr.xz && chmod +x "$B"; fi
log() { echo "=== $*" | tee -a "$OUT/summary.txt"; }

log "1. device"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee -a "$OUT/summary.txt"
CU13=$(python3 -c 'import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],"cu13","lib"))' 2>/dev/null)
[ -e "$CU13/libcublas.so.13" ] || CU13=$(dirname "$(find / -name libcublas.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$CU13:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
ldd "$B" | grep -E 'libcu|not found' | tee -a "$OUT/summary.txt"
export RUST_LOG=warn

log "2. parity: greedy continuation of the tiny model, cpu vs cuda:0 (f32)"
PROMPT=$'<prog>def f(a, b):\n return a * 3 - b\n<in>7, 4<out>'
"$B" generate --model assets/tiny-base --prompt "$PROMPT" --max-tokens 48 --device cpu > "$OUT/gen-cpu.txt"
"$B" generate --model assets/tiny-base --prompt "$PROMPT" --max-tokens 48 --device cuda:0 > "$OUT/gen-cuda.txt"
if cmp -s "$OUT/gen-cpu.txt" "$OUT/gen-cuda.txt"; then log "parity: identical greedy continuations"; else log "parity: DIFFERENT"; diff "$OUT/gen-cpu.txt" "$OUT/gen-cuda.txt" | tee -a "$OUT/summary.txt"; fi

log "3. model benchmark (Qwen2.5-0.5B shape, bf16, cuda:0)"
timeout 240 "$B" bench model --config config/bench/gpu-0.5b.toml --out "$OUT/bench-model.json" | tee -a "$OUT/summary.txt"
python3 - "$OUT/bench-model.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, subprocess, sys
r = json.load(open(sys.argv[1]))
name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
peak = 989e12 if "H100" in name or "H200" in name else float("nan")  # bf16 dense, SXM
for m in r["models"]:
    params = m["params"]
    tps = m["train"]["tokens_per_s"]
    print(f"{m['model']['name']}: {params/1e6:.0f}M params, train {tps:.0f} tok/s, MFU {6*params*tps/peak*100:.1f}% of {peak/1e12:.0f} TFLOP/s ({name})")
PY

log "4. pipeline: self-play steps with the learner on the GPU, overlap vs on-policy"
sed -e 's/^device = "cpu"/device = "cuda:0"/' -e 's/^max_steps = 0 .*/max_steps = 0/' config/default.toml > "$OUT/gpu-run.toml"
timeout 300 "$B" bench pipeline --config "$OUT/gpu-run.toml" --steps 4 --out "$OUT/bench-pipeline.json" | tee -a "$OUT/summary.txt"
log "done"
