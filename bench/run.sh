#!/usr/bin/env bash
# Benchmark of the embedded default (SQLite, offline provider), printing the figures the README
# records: idle RSS, cold start to the first 200 on /health, and throughput with p50/p99 latency of
# POST /api/v1/chat and GET /api/v1/conversations at concurrency 64. Not a test: nothing here
# passes or fails, it measures. Loopback only.
#
#   bench/run.sh            (env: C=64 D=15 WARMUP=3 ROUNDS=3 USERS=50 SEED=20 COLD_RUNS=5; medians over the rounds)
#
# Uses the shared harness in ../shared/bench (wrk + Lua, rss sampler, cold start timer).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
harness="${HARNESS:-$repo/../shared/bench}"
C="${C:-64}"; D="${D:-15}"; WARMUP="${WARMUP:-3}"; USERS="${USERS:-50}"; SEED="${SEED:-20}"; COLD_RUNS="${COLD_RUNS:-5}"; ROUNDS="${ROUNDS:-3}"
LOAD_PORT="${LOAD_PORT:-18081}"; COLD_PORT="${COLD_PORT:-18080}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -x "$harness/run-bench.sh" ] || { echo "bench: the shared harness is not at $harness (set HARNESS=)" >&2; exit 1; }

echo "== building (release)"
(cd "$repo" && cargo build --release -q)
bin="$CARGO_TARGET_DIR/release/switchboard"
work="$(mktemp -d)"; out="$repo/bench/results/$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$out"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== cold start: process start to the first 200 on /health ($COLD_RUNS runs, new data directory each)"
"$harness/run-bench.sh" cold --runs "$COLD_RUNS" --url "http://127.0.0.1:$COLD_PORT/health" \
  --cmd "d=\$(mktemp -d); exec $bin serve --addr 127.0.0.1:$COLD_PORT --data-dir \$d --log-level warn" | tee "$out/cold.txt"

echo "== starting the server for load"
"$bin" serve --addr "127.0.0.1:$LOAD_PORT" --data-dir "$work/data" --rate-limit-per-minute 0 --log-level warn \
  > "$work/serve.out" 2> "$work/serve.err" & pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$LOAD_PORT/health" >/dev/null && break; sleep 0.05; done
sleep 3  # idle: after the startup's transient memory (the search index build) is handed back
idle_kib=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "idle RSS: $((idle_kib / 1024)) MiB ($idle_kib KiB)" | tee "$out/idle.txt"

echo "== minting $USERS tokens and seeding $SEED conversations each"
tokens="$work/tokens.txt"; : > "$tokens"
for i in $(seq "$USERS"); do "$bin" token --user "bench-$i" --data-dir "$work/data" --ttl 2h >> "$tokens"; done
while read -r t; do
  for j in $(seq "$SEED"); do
    curl -fs -o /dev/null -H "Authorization: Bearer $t" -H 'content-type: application/json' \
      -d "{\"message\":\"seed $j\"}" "http://127.0.0.1:$LOAD_PORT/api/v1/chat"
  done
done < "$tokens"

run() {  # label path method
  "$harness/run-bench.sh" -c "$C" -d "$D" --warmup "$WARMUP" --rounds "$ROUNDS" --token-file "$tokens" \
    --path "$2" --method "$3" --rss-pid-a "$pid" --label-a "$1" --out "$out/$1" "http://127.0.0.1:$LOAD_PORT" | tee "$out/$1.txt"
}
echo "== GET /api/v1/conversations, c=$C"
run list /api/v1/conversations GET
echo "== POST /api/v1/chat (offline provider), c=$C"
run chat /api/v1/chat POST

echo
echo "== figures (also in $out)"
cat "$out/idle.txt"
grep -h "COLD_JSON" "$out/cold.txt" || true
