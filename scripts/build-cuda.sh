#!/usr/bin/env bash
# Build the `azr` binary with the `cuda` feature on a machine with NO GPU and NO CUDA toolkit,
# using only the crate registry and PyPI (CUDA 13.0 wheels), for NVIDIA sm_90 GPUs (H100/H200).
#
#   bash scripts/build-cuda.sh            # -> .cudabin/azr (+ .cudabin/azr.xz)
#
# How it works (facts from ../shared/reference/cuda-build.md):
#  * CUDA 12 wheels ship no nvcc; the CUDA 13.0 wheels form a complete toolkit tree. Stay on 13.0.x:
#    the target driver (580.x) is CUDA 13.0 and a 13.1+ nvcc writes PTX a 580 driver cannot JIT.
#  * candle forces cudarc's dynamic linking, so `-lcuda` must resolve at link time: we generate a
#    link-only stub libcuda.so (every entry point returns CUDA_ERROR_NO_DEVICE). It is never shipped:
#    the binary records the SONAME libcuda.so.1 and uses the driver's real library on the GPU machine.
#  * There is no nvidia-smi here, so the compute capability is given: CUDA_COMPUTE_CAP=90 (sm_90a).
# The CPU build (target/) is untouched: this script builds into target-cuda/.
# Needs: rustup toolchain, gcc/g++, python3 + pip, ~3 GB of disk. Cold: ~13-15 minutes on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${AZR_CUDA_WORK:-$ROOT/.cache/cuda}"
OUT="$ROOT/.cudabin"
CAP="${CUDA_COMPUTE_CAP:-90}"
mkdir -p "$WORK" "$OUT"

# 1. CUDA 13.0 toolkit from PyPI (idempotent).
CU="$WORK/py/nvidia/cu13"
if [ ! -x "$CU/bin/nvcc" ]; then
  echo "[build-cuda] installing the CUDA 13.0.2 toolkit wheels into $WORK/py"
  python3 -m pip install -q --target "$WORK/py" \
    "cuda-toolkit[nvcc,crt,nvvm,cudart,nvrtc,cublas,curand,cccl]==13.0.2"
fi
"$CU/bin/nvcc" --version | tail -2

# 2. Link-time fixes: unversioned .so names for the -l flags, and the libcuda stub.
(cd "$CU/lib" && for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done \
  && ln -sf libcurand.so.10 libcurand.so)
cd "$ROOT"
cargo fetch -q
CUDARC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | sort | tail -1)"
if [ -z "$CUDARC" ]; then echo "[build-cuda] cudarc sources not found after cargo fetch" >&2; exit 1; fi
mkdir -p "$CU/lib/stubs" "$WORK/stub"
grep -ohE '^pub unsafe fn cu[A-Za-z0-9_]+\(' "$CUDARC/src/driver/sys/mod.rs" \
  | sed -E 's/^pub unsafe fn ([A-Za-z0-9_]+)\(/\1/' | sort -u > "$WORK/stub/libcuda.syms"
{ echo '/* link-time stub: every entry point returns CUDA_ERROR_NO_DEVICE (100). Never ship it. */'
  while read -r s; do echo "int $s(void) { return 100; }"; done < "$WORK/stub/libcuda.syms"; } > "$WORK/stub/libcuda_stub.c"
gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" "$WORK/stub/libcuda_stub.c"
echo "[build-cuda] libcuda link stub: $(wc -l < "$WORK/stub/libcuda.syms") symbols"

# 3. Build.
export CUDA_HOME="$CU" CUDA_PATH="$CU" CUDA_ROOT="$CU" CUDA_COMPUTE_CAP="$CAP"
export PATH="$CU/bin:$PATH"
export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-Wl,-rpath,\$ORIGIN/lib"
time cargo build --release -p azr --features cuda --target-dir "$ROOT/target-cuda"

# 4. Bundle: only the binary travels (the GPU machine's PyTorch ships the CUDA 13 user-space libs).
cp "$ROOT/target-cuda/release/azr" "$OUT/azr"
xz -T0 -6 -k -f "$OUT/azr"
ls -la "$OUT"
echo "[build-cuda] NEEDED: $(readelf -d "$OUT/azr" | grep NEEDED | sed -E 's/.*\[(.*)\]/\1/' | tr '\n' ' ')"
echo "[build-cuda] glibc floor: $(objdump -T "$OUT/azr" | grep -oE 'GLIBC_[0-9.]+' | sort -V | tail -1)"
echo "[build-cuda] done: $OUT/azr (carry .cudabin/azr.xz to the GPU machine; see scripts/gpu-check.sh)"
