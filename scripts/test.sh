#!/usr/bin/env bash
# The whole test suite: what a new user runs on a fresh machine, and what .ci/run calls.
# Installs what it needs first when missing (Debian's prometheus via apt-get, the npm packages
# of tools/package.json, matplotlib in target/obs-venv for the dashboard picture), then:
#   0. cargo fmt --check and cargo clippy --workspace --all-targets -- -D warnings
#   1. cargo build --release --workspace --all-targets
#   2. cargo test --release --workspace (promtool lint of the metric exposition required)
#   3. the dashboard checker's own tests, generated dashboards up to date
#   4. static dashboard checks: catalogue <-> panels, lints, PromQL parse, Grafana schema
#   5. scripts/test-observability.sh: real Prometheus scraping the stand-in exporter, and the
#      real `azr run` once the binary has `run --metrics-addr`; every panel query returns data
#   6. every dashboard rendered from the live data to target/dashboards/{stand-in,azr-run}/*.png
#   7. scripts/gpu-check.sh --cpu-rehearsal: every stage of the GPU check at tiny sizes on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { echo; echo "=== $*"; }

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    step "installing prometheus (Debian package; also provides promtool)"
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi

step "SmolLM2-135M GGUF for the GGUF parity test (scripts/fetch-smollm2.sh, sha256-checked)"
if gguf=$(bash scripts/fetch-smollm2.sh | tail -1) && [[ -f "$gguf" ]]; then
    export AZR_SMOLLM2_GGUF="$gguf"
elif [[ "${CI:-}" == "true" ]]; then
    echo "fetch-smollm2.sh failed in CI" >&2; exit 1
else
    echo "fetch-smollm2.sh failed: the real-weights GGUF parity tests will be skipped"
fi

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --release --workspace --all-targets"
cargo build --release --workspace --all-targets

step "cargo test --release --workspace"
AZR_REQUIRE_PROMTOOL=1 RAYON_NUM_THREADS=1 cargo test --release --workspace

step "dashboard tooling tests"
python3 -m unittest tools/test_check_dashboards.py
python3 tools/gen_dashboards.py --check

step "Grafana schema (generated from @grafana/schema) and static dashboard checks"
(cd tools && npm ci --no-audit --no-fund --loglevel=error && npm run -s schema)
python3 tools/check_dashboards.py --quiet --promtool --schema tools/dashboard.schema.json

step "matplotlib for the dashboard picture"
if [[ ! -x target/obs-venv/bin/python ]] || ! target/obs-venv/bin/python -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv target/obs-venv
    target/obs-venv/bin/pip install -q --disable-pip-version-check -r tools/requirements-render.txt
fi
mkdir -p target/dashboards

step "Prometheus + dashboards against the stand-in exporter (examples/metrics_exporter.rs)"
RENDER_PYTHON=target/obs-venv/bin/python scripts/test-observability.sh --min-steps 20 \
    --render target/dashboards/stand-in

if target/release/azr run --help 2>/dev/null | grep -q -- --metrics-addr; then
    step "Prometheus + dashboards against a real azr run"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    run_dir=$(mktemp -d)
    # Greedy-miss targeting on, so that its probe panel has data like every other panel.
    RENDER_PYTHON=target/obs-venv/bin/python scripts/test-observability.sh --min-steps 3 --timeout 900 \
        --render target/dashboards/azr-run --metrics-addr "127.0.0.1:$port" -- \
        target/release/azr run --max-steps 1000 --metrics-addr "127.0.0.1:$port" --run-dir "$run_dir" \
        --set tasks.buffer.prefer_greedy_miss=true
    rm -rf "$run_dir"
else
    step "azr has no 'run --metrics-addr' yet: the real-run observability check is not run"
fi

step "GPU check rehearsed on the CPU (scripts/gpu-check.sh --cpu-rehearsal)"
RAYON_NUM_THREADS=2 bash scripts/gpu-check.sh --cpu-rehearsal target/gpu-rehearsal

echo
echo "scripts/test.sh: all test stages passed"
