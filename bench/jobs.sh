#!/usr/bin/env bash
# Benchmark of the job queue: jobs per second from enqueue to completed, and queue latency
# (enqueue -> a worker starts it) p50/p99, with 1, 2 and 4 workers, on PostgreSQL and on the
# embedded SQLite queue. Jobs are chat messages answered by the scripted model server (mock-llm,
# 0 ms). wrk enqueues through POST /api/v1/jobs for D seconds at concurrency C; the figures
# come from the jobs table once the queue has drained. Not a test: it measures. Loopback only.
#
#   bench/jobs.sh        (env: BIN=a built binary to measure instead of building; C=16 D=10 WORKERS="1 2 4" BACKENDS="postgres sqlite redis"
#                              PG=postgres://postgres@127.0.0.1:5432/postgres REDIS=redis://127.0.0.1:6379)
#   "redis" is PostgreSQL for the job records with job ids through Redis Streams (--job-queue redis).
#   RATE=20 bench/jobs.sh   enqueue at a steady 20 jobs/s instead of as fast as wrk can (the
#                           queue latency of a queue that is not saturated)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
harness="${HARNESS:-$repo/../shared/bench}"
C="${C:-16}"; D="${D:-10}"; RATE="${RATE:-0}"; WORKERS="${WORKERS:-1 2 4}"; BACKENDS="${BACKENDS:-postgres sqlite redis}"
PG="${PG:-postgres://postgres@127.0.0.1:5432/postgres}"; REDIS="${REDIS:-redis://127.0.0.1:6379}"; PORT="${PORT:-18090}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
echo "== building Switchboard and mock-llm (release)"
[ -n "${BIN:-}" ] || (cd "$repo" && cargo build --release -q -p switchboard)
CARGO_TARGET_DIR="$HOME/.cache/mock-llm-target" cargo build --release -q --manifest-path "$harness/mock-llm/Cargo.toml"
bin="${BIN:-$CARGO_TARGET_DIR/release/switchboard}"
work="$(mktemp -d)"; pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$HOME/.cache/mock-llm-target/release/mock-llm" --port 9998 > "$work/mock.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs http://127.0.0.1:9998/health >/dev/null && break; sleep 0.05; done

cat > "$work/jobs.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/api/v1/jobs", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN")}, '{"message":"bench job ' .. n .. '"}')
end
LUA

# Figures from the jobs table: count, span (first enqueue -> last completion), queue latency.
stats_sql="
  SELECT COUNT(*) FILTER (WHERE status = 'completed'), COUNT(*),
         EXTRACT(EPOCH FROM MAX(completed_at) - MIN(created_at)),
         1000 * PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)),
         1000 * PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)),
         (SELECT COUNT(*) FROM job_events)::float / COUNT(*)
  FROM jobs"
sqlite_stats() {  # the same figures from the SQLite file (times are RFC 3339 text)
  python3 - "$1" <<'PY'
import sqlite3, sys, datetime
rows = sqlite3.connect(sys.argv[1]).execute("SELECT status, created_at, started_at, completed_at FROM jobs").fetchall()
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
done = [r for r in rows if r[0] == "completed"]
waits = sorted(t(r[2]) - t(r[1]) for r in done)
span = max(t(r[3]) for r in done) - min(t(r[1]) for r in rows)
pct = lambda p: 1000 * waits[min(len(waits) - 1, int(p * len(waits)))]
events = sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM job_events").fetchone()[0]
print(f"{len(done)}|{len(rows)}|{span:.3f}|{pct(0.5):.2f}|{pct(0.99):.2f}|{events / len(rows):.1f}")
PY
}

# PostgreSQL's CPU time: its live processes', and (through the postmaster) that of those that exited.
pg_ticks() {
  local pm; pm=$(pgrep -o -x postgres) || { echo 0; return; }
  { for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done
    awk '{print $16 + $17}' "/proc/$pm/stat"; } | awk '{n += $1} END {print n + 0}'
}
ms_per_job() { python3 -c "import os; print($1 * 1000 / os.sysconf('SC_CLK_TCK') / $2)"; }

printf "\n%-9s %-7s %9s %9s %11s %11s %11s %11s %11s %11s %11s\n" backend workers jobs "span s" "jobs/s" "wait p50ms" "wait p99ms" \
  "events/job" "CPU ms/job" "PG ms/job" "WAL kB/job"
for backend in $BACKENDS; do
  for w in $WORKERS; do
    data="$work/data-$backend-$w"; db_args=()
    if [ "$backend" != sqlite ]; then
      name="sb_bench_jobs_$$_${backend}_$w"
      psql -q "$PG" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
      url="${PG%/*}/$name"; db_args=(--database-url "$url")
    fi
    if [ "$backend" = redis ]; then
      db_args+=(--job-queue redis --redis-url "$REDIS" --redis-prefix "bench-$$-$w")
    fi
    "$bin" serve --addr "127.0.0.1:$PORT" --data-dir "$data" "${db_args[@]}" --workers "$w" \
      --rate-limit-per-minute 0 --log-level warn --llm-provider openai \
      --llm-base-url http://127.0.0.1:9998/v1 --llm-model mock-gpt > "$work/sb.out" 2> "$work/sb.err" & sb=$!
    for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.05; done
    token="$("$bin" token --user bench --data-dir "$data" --ttl 2h)"
    pg_before=$(pg_ticks); wal_before=$(psql -At "$PG" -c "SELECT pg_current_wal_lsn()")
    if [ "$RATE" = 0 ]; then
      TOKEN="$token" wrk -t2 -c"$C" -d"${D}s" -s "$work/jobs.lua" "http://127.0.0.1:$PORT" > "$work/wrk.txt"
    else
      python3 - "$PORT" "$token" "$RATE" "$D" <<'PY'
import http.client, json, sys, time
port, token, rate, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port)
start = time.monotonic()
for n in range(int(rate * seconds)):
    time.sleep(max(0.0, start + n / rate - time.monotonic()))
    conn.request("POST", "/api/v1/jobs", json.dumps({"message": f"bench job {n}"}),
                 {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    conn.getresponse().read()
PY
    fi
    admin="$(sed -n 's/^Local user token (valid 30 days): //p' "$work/sb.out")"
    for _ in $(seq 360); do  # wait for the queue to drain (at most 180 s); cheap polls, so the
      # waiting takes no CPU from the queue (the figures come from the jobs table's timestamps)
      left=$(curl -fs -H "Authorization: Bearer $admin" "http://127.0.0.1:$PORT/api/v1/admin/queue" \
        | grep -o '"\(queued\|running\)":[0-9]*' | awk -F: '{n += $2} END {print n + 0}')
      [ "$left" = 0 ] && break; sleep 0.5
    done
    if [ "$backend" != sqlite ]; then
      figures=$(psql -At "$url" -c "$stats_sql")
    else
      figures=$(sqlite_stats "$data/switchboard.db")
    fi
    ticks=$(awk '{print $14 + $15}' "/proc/$sb/stat")  # the server's CPU time (user + system), robust to a busy host
    pg=$(( $(pg_ticks) - pg_before ))  # (the embedded queue: whatever else used PostgreSQL meanwhile)
    wal=$(psql -At "$PG" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_before')")  # bytes of write-ahead log
    kill "$sb"; wait "$sb" 2>/dev/null || true
    [ "$backend" != sqlite ] && psql -q "$PG" -c "DROP DATABASE IF EXISTS $name"
    [ "$backend" = redis ] && redis-cli -u "$REDIS" --scan --pattern "bench-$$-$w:*" | xargs -r redis-cli -u "$REDIS" del >/dev/null
    IFS='|' read -r done total span p50 p99 events <<< "$figures"
    printf "%-9s %-7s %9s %9.2f %11.0f %11.2f %11.2f %11.1f %11.2f %11.2f %11.2f\n" "$backend" "$w" "$done/$total" "$span" \
      "$(python3 -c "print($done / $span)")" "$p50" "$p99" "$events" "$(ms_per_job "$ticks" "$done")" "$(ms_per_job "$pg" "$done")" \
      "$(python3 -c "print($wal / 1024 / $done)")"
  done
done
