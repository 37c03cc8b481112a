#!/usr/bin/env bash
# Records which functions a running server executes — at start, and on the requests people make
# most (chat with the offline provider and with an OpenAI-compatible model making a tool call,
# streamed and not, conversations, tasks, jobs, catalog search, /mcp) — and writes their names to
# crates/switchboard/hot-code.txt, which the release link uses to lay them out together
# (crates/switchboard/build.rs). Run it again after a toolchain or dependency update, or a large
# change: names the code no longer has are passed over, so an old list only loses its effect.
#
#   bench/hot-code.sh        (needs valgrind, which it installs with apt-get if missing)
#
# Runs the release binary under callgrind (about 50 times slower), so it takes a few minutes.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
harness="${HARNESS:-$repo/../shared/bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
export JWT_SECRET="${JWT_SECRET:-bench-secret-0123456789abcdef0123456789}"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

echo "== building Switchboard and mock-llm (release)"
(cd "$repo" && cargo build --release -q -p switchboard)
CARGO_TARGET_DIR="$HOME/.cache/mock-llm-target" cargo build --release -q --manifest-path "$harness/mock-llm/Cargo.toml"
bin="$CARGO_TARGET_DIR/release/switchboard"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
up() { for _ in $(seq 300); do curl -fs "$1/health" >/dev/null && return 0; sleep 0.2; done; echo "hot-code: $1 did not come up" >&2; exit 1; }

"$HOME/.cache/mock-llm-target/release/mock-llm" --port 9997 > "$work/mock.log" 2>&1 & pids+=($!)
up http://127.0.0.1:9997

# The requests, a few times over.
requests() {
  local u="$1" t="$2" auth="Authorization: Bearer $2" json="Content-Type: application/json"
  local mcp=(-H "Accept: application/json, text/event-stream" -H "MCP-Protocol-Version: 2025-11-25")
  for i in 1 2 3; do
    curl -s "$u/health" "$u/ready" "$u/metrics" -o /dev/null -o /dev/null -o /dev/null
    curl -s -H "$auth" "$u/api/v1/me" -o /dev/null
    c=$(curl -s -H "$auth" -H "$json" -d "{\"message\":\"add a task called buy milk $i\"}" "$u/api/v1/chat" |
      python3 -c 'import sys, json; print(json.load(sys.stdin)["conversation_id"])')
    curl -s -H "$auth" -H "$json" -d "{\"message\":\"list my tasks\",\"conversation_id\":\"$c\"}" "$u/api/v1/chat" -o /dev/null
    curl -s -H "$auth" -H "$json" -d "{\"message\":\"list my tasks\",\"conversation_id\":\"$c\",\"stream\":true}" "$u/api/v1/chat" -o /dev/null
    curl -s -H "$auth" "$u/api/v1/conversations?limit=20" "$u/api/v1/conversations/$c" "$u/api/v1/conversations/$c/messages" \
      "$u/api/v1/tasks" "$u/api/v1/jobs" "$u/api/v1/servers/search?q=github+issues" -o /dev/null -o /dev/null -o /dev/null \
      -o /dev/null -o /dev/null -o /dev/null
    curl -s -H "$auth" -H "$json" -d '{"title":"a task"}' "$u/api/v1/tasks" -o /dev/null
    j=$(curl -s -H "$auth" -H "$json" -d '{"message":"list my tasks"}' "$u/api/v1/jobs" |
      python3 -c 'import sys, json; print(json.load(sys.stdin)["job_id"])')
    sleep 1
    curl -s -m 3 -H "$auth" "$u/api/v1/jobs/$j" "$u/api/v1/jobs/$j/events" -o /dev/null -o /dev/null
    curl -s -H "$auth" -H "$json" "${mcp[@]}" -D "$work/mcp-headers" -o /dev/null "$u/mcp" \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"hot-code","version":"1"}}}'
    s=$(awk 'tolower($1) == "mcp-session-id:" { print $2 }' "$work/mcp-headers" | tr -d '\r')
    for body in '{"jsonrpc":"2.0","method":"notifications/initialized"}' '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_tasks","arguments":{}}}'; do
      curl -s -H "$auth" -H "$json" "${mcp[@]}" -H "Mcp-Session-Id: $s" -d "$body" "$u/mcp" -o /dev/null
    done
    curl -s -H "$auth" -H "$json" -d '{"message":""}' "$u/api/v1/chat" -o /dev/null
    curl -s "$u/api/v1/conversations" -o /dev/null
  done
}

# One server per provider, each under callgrind until SIGINT; `--demangle=no` keeps the names the
# linker knows.
profile() {
  local name="$1" port="$2"; shift 2
  SWITCHBOARD_JWT_SECRET="$JWT_SECRET" valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" --demangle=no \
    --compress-strings=no --compress-pos=no "$bin" serve --addr "127.0.0.1:$port" --data-dir "$work/$name-data" \
    --log-level warn --rate-limit-per-minute 0 "$@" > "$work/$name.stdout" 2> "$work/$name.stderr" &
  local pid=$!; pids+=("$pid")
  up "http://127.0.0.1:$port"
  requests "http://127.0.0.1:$port" "$(awk '/^Local user token/ { print $NF }' "$work/$name.stdout")"
  if [ "$name" = model ]; then
    "$harness/run-bench.sh" -c 4 -d 15 --warmup 0 --rounds 1 --users 10 --label-a hot-code --out "$work/bench" \
      "http://127.0.0.1:$port" > /dev/null
  fi
  kill -INT "$pid"; wait "$pid" || true
}
echo "== offline provider"
profile offline 18095
echo "== OpenAI-compatible model with a tool call (mock-llm), and the chat benchmark's load"
profile model 18096 --llm-provider openai --llm-base-url http://127.0.0.1:9997/v1 --llm-model mock-gpt

out="$repo/crates/switchboard/hot-code.txt"
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u > "$work/defined"
{
  echo "# Functions the server runs, for the release link's layout: written by bench/hot-code.sh, read by build.rs."
  cat "$work/offline.out" "$work/model.out" | sed -n 's/^fn=\(([0-9]*) \)\{0,1\}//p' | sed "s/'[0-9]*\$//" | sort -u |
    comm -12 - "$work/defined"
} > "$out"
echo "== $(($(wc -l < "$out") - 1)) functions in $out"
