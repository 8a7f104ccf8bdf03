#!/usr/bin/env bash
# Test the Prometheus side for real: start a metrics target (by default the stand-in exporter
# `examples/metrics_exporter.rs`; later `azr run --max-steps N --metrics-addr ADDR`), start
# Debian's `prometheus` on loopback with a fresh TSDB scraping it every second, wait for real
# steps to be scraped, then
#   1. `promtool check config` on the CI config and on dashboards/prometheus.yml,
#   2. the target is up with no scrape error,
#   3. `promtool check metrics` on the live exposition is clean,
#   4. the live exposition has every metric of src/metrics.rs,
#   5. the series count stays within a cardinality budget,
#   6. tools/check_dashboards.py --prometheus: every panel query of every dashboard returns
#      finite data and every query variable has values,
#   7. optionally (--render DIR) tools/render_dashboard.py draws every dashboard to DIR/*.png
#      (with $RENDER_PYTHON, default python3; it needs matplotlib).
# Exits non-zero on any failure. Needs prometheus, promtool, curl, python3.
#
# Usage:
#   scripts/test-observability.sh [--min-steps N] [--timeout S] [--render DIR] \
#       [--metrics-addr HOST:PORT -- COMMAND ARGS...]
# Without a command, runs target/release/examples/metrics_exporter on a free port
# (build it first: cargo build --release -p azr-core --example metrics_exporter).
# Example with the real binary:
#   scripts/test-observability.sh --min-steps 3 --metrics-addr 127.0.0.1:19464 -- \
#       target/release/azr run --max-steps 40 --metrics-addr 127.0.0.1:19464 --run-dir "$(mktemp -d)"
set -euo pipefail
cd "$(dirname "$0")/.."

min_steps=10
timeout_s=180
render=""
metrics_addr=""
series_budget=3000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --min-steps) min_steps="$2"; shift 2 ;;
        --timeout) timeout_s="$2"; shift 2 ;;
        --render) render="$2"; shift 2 ;;
        --metrics-addr) metrics_addr="$2"; shift 2 ;;
        --series-budget) series_budget="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

for tool in prometheus promtool curl python3; do
    command -v "$tool" >/dev/null || { echo "test-observability: $tool not found" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [[ $# -eq 0 ]]; then
    exporter=target/release/examples/metrics_exporter
    [[ -x $exporter ]] || { echo "test-observability: build $exporter first" >&2; exit 1; }
    metrics_addr="127.0.0.1:$(free_port)"
    set -- "$exporter" --addr "$metrics_addr" --steps 0 --step-ms 250
elif [[ -z $metrics_addr ]]; then
    echo "test-observability: --metrics-addr is required with a command" >&2
    exit 2
fi

work=$(mktemp -d)
# A port freed a moment ago can be handed out again: never give Prometheus the target's port
# (the target may not have bound it yet).
prom_port=$(free_port)
while [[ "127.0.0.1:$prom_port" == "$metrics_addr" ]]; do prom_port=$(free_port); done
prom_addr="127.0.0.1:$prom_port"
prom_url="http://$prom_addr"
target_pid=""
prom_pid=""
cleanup() {
    # Stop only the processes started here, by pid.
    [[ -n $target_pid ]] && kill "$target_pid" 2>/dev/null || true
    [[ -n $prom_pid ]] && kill "$prom_pid" 2>/dev/null || true
    [[ -n $target_pid ]] && wait "$target_pid" 2>/dev/null || true
    [[ -n $prom_pid ]] && wait "$prom_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
query() { curl -sf -G "$prom_url/api/v1/query" --data-urlencode "query=$1"; }
# First value of an instant query, or empty.
value() { query "$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true; }

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: azr
    static_configs:
      - targets: ["$metrics_addr"]
EOF
for cfg in "$work/prometheus.yml" dashboards/prometheus.yml; do
    if promtool check config "$cfg" >"$work/check-config.log" 2>&1; then
        pass "promtool check config $cfg"
    else
        fail "promtool check config $cfg: $(cat "$work/check-config.log")"
    fi
done

echo "test-observability: target: $* (metrics on $metrics_addr)"
"$@" >"$work/target.log" 2>&1 &
target_pid=$!
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="$prom_addr" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!

deadline=$((SECONDS + timeout_s))
wait_for() { # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds or the deadline
    local what="$1"; shift
    until "$@"; do
        if ((SECONDS > deadline)); then
            fail "timed out after ${timeout_s}s waiting for $what"
            echo "--- target log"; tail -n 40 "$work/target.log" || true
            echo "--- prometheus log"; tail -n 20 "$work/prometheus.log" || true
            echo "$failures failed"
            exit 1
        fi
        if ! kill -0 "$prom_pid" 2>/dev/null; then
            fail "prometheus exited"; tail -n 20 "$work/prometheus.log"; exit 1
        fi
        sleep 0.5
    done
}
wait_for "prometheus ready" curl -sf "$prom_url/-/ready" -o /dev/null
pass "prometheus $(curl -s "$prom_url/api/v1/status/buildinfo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["version"])') ready on $prom_addr"
up_is_1() { [[ $(value 'up{job="azr"}') == 1 ]]; }
wait_for "the first successful scrape" up_is_1
pass "target $metrics_addr scraped"
steps_reached() { local v; v=$(value 'max(azr_steps_total)'); [[ -n $v ]] && python3 -c "import sys; sys.exit(0 if float('$v') >= $min_steps else 1)"; }
wait_for "azr_steps_total >= $min_steps" steps_reached
pass "azr_steps_total reached $(value 'max(azr_steps_total)') (>= $min_steps)"
# Two more scrapes so that every rate window holds the moving counters.
sleep 3

targets=$(curl -s "$prom_url/api/v1/targets")
if python3 -c 'import json,sys; t=json.load(sys.stdin)["data"]["activeTargets"]; sys.exit(0 if t and all(x["health"]=="up" and not x["lastError"] for x in t) else 1)' <<<"$targets"; then
    pass "every scrape target is up with no error"
else
    fail "scrape target unhealthy: $targets"
fi

if kill -0 "$target_pid" 2>/dev/null && curl -sf "http://$metrics_addr/metrics" -o "$work/exposition.txt"; then
    if promtool check metrics <"$work/exposition.txt" >"$work/lint.log" 2>&1; then
        pass "promtool check metrics on the live exposition ($(wc -l <"$work/exposition.txt") lines)"
    else
        fail "promtool check metrics: $(cat "$work/lint.log")"
    fi
    missing=$(python3 - "$work/exposition.txt" <<'EOF'
import re, sys
sys.path.insert(0, "tools")
from check_dashboards import parse_catalogue
defs, _ = parse_catalogue("src/metrics.rs")
text = open(sys.argv[1]).read()
print(" ".join(n for n, d in sorted(defs.items())
               if not re.search(rf"^# TYPE {n} {d['kind']}$", text, re.M)))
EOF
)
    if [[ -z $missing ]]; then pass "live exposition has every metric of src/metrics.rs"; else fail "missing from the exposition: $missing"; fi
else
    fail "target exited before its exposition could be read (see its log below)"
    tail -n 40 "$work/target.log"
fi

series=$(curl -s "$prom_url/api/v1/status/tsdb" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["headStats"]["numSeries"])')
if ((series <= series_budget)); then pass "cardinality: $series series (budget $series_budget)"; else fail "cardinality: $series series > $series_budget"; fi

if python3 tools/check_dashboards.py --quiet --prometheus "$prom_url" --rate-interval 30s --range 5m; then
    pass "live dashboard check"
else
    fail "live dashboard check"
fi

# Negative control: the live check must fail on a query that selects nothing.
python3 - "$work/absent.json" <<'EOF'
import json, sys
d = json.load(open("dashboards/overview.json"))
p = next(p for p in d["panels"] if p.get("title") == "Policy-gradient loss")
p["targets"][0]["expr"] = p["targets"][0]["expr"].replace('job=~"$job"', 'job="absent"')
json.dump(d, open(sys.argv[1], "w"))
EOF
if python3 tools/check_dashboards.py --quiet --prometheus "$prom_url" --rate-interval 30s \
    "$work/absent.json" $(ls dashboards/*.json | grep -v overview.json) >"$work/negative.log" 2>&1; then
    fail "live check accepted a query with no data"
elif [[ $(grep -c '^FAIL' "$work/negative.log") == 1 ]] && grep -q 'job="absent".*no data' "$work/negative.log"; then
    pass "live check rejects a query with no data (negative control)"
else
    fail "negative control failed for another reason: $(cat "$work/negative.log")"
fi

if [[ -n $render ]]; then
    mkdir -p "$render"
    for dash in dashboards/*.json; do
        out="$render/$(basename "$dash" .json).png"
        if "${RENDER_PYTHON:-python3}" tools/render_dashboard.py "$dash" "$out" --prometheus "$prom_url" --range 5m; then
            pass "rendered $dash to $out"
        else
            fail "render_dashboard.py $dash"
        fi
    done
fi

if ((failures)); then
    echo "test-observability: $failures failed"
    exit 1
fi
echo "test-observability: all checks passed"
