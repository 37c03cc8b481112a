#!/usr/bin/env bash
# One chat turn that makes one tool call, model latency 0 ms, concurrency 16: Switchboard and the
# Python reference stack side by side in one interleaved run (A B A B A B) of the shared harness.
# Both talk to the same scripted model server (mock-llm). Prints req/s, p50/p99, peak RSS and CPU
# per request for each, and the ratios. Loopback only.
#
#   bench/vs-reference.sh      (env: C=16 D=20 WARMUP=3 ROUNDS=3 USERS=50)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
harness="${HARNESS:-$repo/../shared/bench}"
C="${C:-16}"; D="${D:-20}"; WARMUP="${WARMUP:-3}"; ROUNDS="${ROUNDS:-3}"; USERS="${USERS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
export JWT_SECRET="${JWT_SECRET:-bench-secret-0123456789abcdef0123456789}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

echo "== building Switchboard and mock-llm (release)"
(cd "$repo" && cargo build --release -q)
CARGO_TARGET_DIR="$HOME/.cache/mock-llm-target" cargo build --release -q --manifest-path "$harness/mock-llm/Cargo.toml"
"$harness/peer/setup.sh"

work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; "$harness/peer/run.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 200); do curl -fs "$1" >/dev/null && return 0; sleep 0.05; done; echo "bench: $1 did not come up" >&2; exit 1; }

"$HOME/.cache/mock-llm-target/release/mock-llm" --port 9999 > "$work/mock.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:9999/health
DATA_DIR="$work/peer-data" RUN_DIR="$work/peer-run" "$harness/peer/run.sh" start
wait_for http://127.0.0.1:8000/health

SWITCHBOARD_JWT_SECRET="$JWT_SECRET" "$CARGO_TARGET_DIR/release/switchboard" serve --addr 127.0.0.1:8080 \
  --data-dir "$work/sb-data" --rate-limit-per-minute 0 --log-level warn \
  --llm-provider openai --llm-base-url http://127.0.0.1:9999/v1 --llm-model mock-gpt > "$work/sb.out" 2> "$work/sb.err" & pids+=($!)
wait_for http://127.0.0.1:8080/health

"$harness/run-bench.sh" -c "$C" -d "$D" --warmup "$WARMUP" --rounds "$ROUNDS" --users "$USERS" \
  --label-a reference --label-b switchboard --aux-port-a 8001 \
  --out "$repo/bench/results/vs-reference-$(date -u +%Y%m%dT%H%M%SZ)" \
  http://127.0.0.1:8000 http://127.0.0.1:8080
