#!/usr/bin/env bash
# Catalog search at scale: 10,000 entries made from the public retrieval catalog (each of its 92
# servers repeated with a varied name and description), then
#   - the start of `serve` on that catalog (process start to the first 200 on /health),
#   - search latency (p50/p99 at concurrency 1; short queries, and the retrieval set's requests, often
#     long) with
#     BM25 alone and with the local sentence model,
#   - the server's RSS in both modes.
# Figures, not a test. Needs the model directory for the second half:
#
#   EMBED_MODEL_DIR=~/.cache/switchboard-models/all-MiniLM-L6-v2 bench/catalog.sh
#     (env: N=10000 D=10; BIN=a built binary to measure instead of building)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data_set="${DATA_SET:-$repo/../shared/data/retrieval}"
N="${N:-10000}"; D="${D:-10}"; PORT="${PORT:-18090}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

echo "== building (release)"
[ -n "${BIN:-}" ] || (cd "$repo" && cargo build --release -q -p switchboard)
bin="${BIN:-$CARGO_TARGET_DIR/release/switchboard}"
work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== a catalog of $N entries"
python3 - "$data_set" "$N" "$work" <<'PY'
import json, sys, urllib.parse
src, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base = json.load(open(f"{src}/catalog.json"))
flavours = ["", " Community edition.", " A lightweight fork.", " Maintained by volunteers.", " With caching.",
            " Self-hosted variant.", " Enterprise build.", " Read-only mirror.", " Experimental branch."]
out = []
for i in range(n):
    e = dict(base[i % len(base)])
    copy = i // len(base)
    if copy:
        e["name"] = f"{e['name']} (fork {copy})"
        e["description"] = e["description"] + flavours[copy % len(flavours)]
    out.append(e)
json.dump(out, open(f"{work}/catalog.json", "w"))
queries = [q["query"][:300] for q in json.load(open(f"{src}/queries-dev.json"))]
short = ["send a slack message", "current time in tokyo", "search arxiv papers", "weather forecast for paris",
         "stock price of nvidia", "read a local file", "open a github issue", "translate text to french",
         "find a recipe for dinner", "convert currency", "query a postgres database", "take a browser screenshot"]
for name, items in (("queries", queries), ("short", short)):
    with open(f"{work}/{name}.lua", "w") as f:
        f.write("queries = {" + ",".join(json.dumps(urllib.parse.quote(q)) for q in items) + "}\n")
PY
start=$(date +%s.%N)
"$bin" catalog import --data-dir "$work/data" "$work/catalog.json"
echo "import: $(echo "$(date +%s.%N) - $start" | bc) s"
token="$("$bin" token --user bench --data-dir "$work/data" --ttl 2h)"
for set in queries short; do
cat > "$work/search-$set.lua" <<LUA
dofile("$work/$set.lua")
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/servers/search?limit=10&q=" .. queries[(i % #queries) + 1],
    {["Authorization"] = "Bearer $token"})
end
LUA
done

serve() {
  "$bin" serve --addr "127.0.0.1:$PORT" --data-dir "$work/data" --rate-limit-per-minute 0 --log-level warn "$@" \
    > "$work/serve.out" 2> "$work/serve.err" & pid=$!
}
search_mode() {
  curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/servers/search?q=time" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])'
}
measure() {
  # Unrecorded first: the first searches build the lexical index and embed the cue texts, and a
  # server whose vectors were stored before still loads them in the background after it answers.
  wrk -t1 -c1 -d5s -s "$work/search-queries.lua" "http://127.0.0.1:$PORT" >/dev/null
  for set in short queries; do
    echo "  $set requests:"
    wrk -t1 -c1 -d"${D}s" --latency -s "$work/search-$set.lua" "http://127.0.0.1:$PORT" \
      | awk '/Requests\/sec/ {print "    req/s", $2} /^ +50%/ {print "    p50", $2} /^ +99%/ {print "    p99", $2}'
  done
  echo "  RSS $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) MiB"
}

echo "== start on $N entries: process start to the first 200 on /health (5 runs)"
for _ in 1 2 3 4 5; do
  t0=$(date +%s%N); serve
  until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.005; done
  echo "  $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

echo "== search, BM25 alone"
serve; until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.05; done
search_mode >/dev/null
measure
kill "$pid"; wait "$pid" 2>/dev/null || true

if [ -n "${EMBED_MODEL_DIR:-}" ]; then
  echo "== search, hybrid with the local model (embedding $N entries in the background first)"
  start=$(date +%s)
  serve --embed-model-dir "$EMBED_MODEL_DIR"
  until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.05; done
  until [ "$(search_mode)" = hybrid ]; do sleep 2; done
  echo "  catalog embedded after $(( $(date +%s) - start )) s"
  measure
  kill "$pid"; wait "$pid" 2>/dev/null || true
fi
