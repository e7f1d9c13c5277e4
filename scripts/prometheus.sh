#!/usr/bin/env bash
# The metrics, proven against a real Prometheus: the server with
# --metrics-addr, Prometheus scraping it every second (both on 127.0.0.1,
# Prometheus with a temporary data directory), a known mix of calls, then
# each count asked of Prometheus's HTTP API and checked against the mix.
# Also: `promtool check metrics` finds nothing to complain about, and the
# endpoint still answers during shutdown's grace period, showing the drain.
#
# Installs Debian's prometheus (for prometheus and promtool) if it is
# missing (needs root or sudo). Usage: scripts/prometheus.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  say "installing prometheus"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

say "building"
cargo build --quiet -p assistant-server -p assistant-client
server=target/debug/assistant-server
client=target/debug/assistant-client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port); metrics_port=$(free_port); prom_port=$(free_port)
metrics_url="http://127.0.0.1:$metrics_port/metrics"

wait_for() { # DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "$what"
}

# A story takes about 1.5 s (146 chunks 0.01 s apart): long enough to
# leave mid-way or to outlast a deadline, short enough to finish.
say "starting the server (gRPC on $grpc_port, metrics on $metrics_port)"
"$server" --addr "127.0.0.1:$grpc_port" --metrics-addr "127.0.0.1:$metrics_port" \
  --think-time 0 --chunk-delay 0.01 --shutdown-grace 5 2>"$work/server.log" &
server_pid=$!; pids+=("$server_pid")
wait_for "the server is healthy" "$client" --server "127.0.0.1:$grpc_port" health

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: assistant
    static_configs:
      - targets: ['127.0.0.1:$metrics_port']
EOF
say "starting Prometheus on $prom_port, scraping every second"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=("$!")
api="http://127.0.0.1:$prom_port/api/v1"
wait_for "Prometheus is ready" curl -sf "http://127.0.0.1:$prom_port/-/ready"

# The value of PromQL expression $1 now, or "none".
query() {
  curl -sf --get "$api/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")'
}
wait_for "Prometheus scrapes the server" bash -c "[ \"\$(curl -sf --get '$api/query' --data-urlencode 'query=up{job=\"assistant\"}' | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"data\"][\"result\"]; print(r[0][\"value\"][1] if r else 0)')\" = 1 ]"

say "the mix: 3 stories to the end, 1 left mid-way, 1 past its deadline, and each call shape"
for _ in 1 2 3; do
  "$client" --server "127.0.0.1:$grpc_port" --step-sec 0 >"$work/story.txt" 2>/dev/null \
    || fail "a story did not finish"
done
# The client leaves after the first lines: `head` closes the pipe.
"$client" --server "127.0.0.1:$grpc_port" --step-sec 0 2>/dev/null | head -n 3 >/dev/null || true
if "$client" --server "127.0.0.1:$grpc_port" --step-sec 0 --timeout 0.5 >/dev/null 2>&1; then
  fail "a story outlasted its 0.5 s deadline"
fi
"$client" --server "127.0.0.1:$grpc_port" hello >/dev/null 2>&1 || fail "hello"
"$client" --server "127.0.0.1:$grpc_port" chat-stream >/dev/null 2>&1 || fail "chat-stream"
"$client" --server "127.0.0.1:$grpc_port" collect >/dev/null 2>&1 || fail "collect"
"$client" --server "127.0.0.1:$grpc_port" chat >/dev/null 2>&1 || fail "chat"
wait_for "every call has ended" bash -c "curl -sf '$metrics_url' | grep -qx 'assistant_calls_in_flight 0'"

say "promtool check metrics"
curl -sf "$metrics_url" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt" || fail "promtool found problems"

# Each count, once Prometheus has it: it scrapes every second.
failures=0
check() { # EXPECTED PROMQL
  local got
  for _ in $(seq 50); do
    got=$(query "$2" || echo none)
    [ "$got" = "$1" ] && { printf '  ok   %-4s %s\n' "$got" "$2"; return 0; }
    sleep 0.2
  done
  printf '  FAIL %s (expected %s) %s\n' "$got" "$1" "$2"
  failures=$((failures + 1))
}
story='grpc_service="assistant.AssistantService",grpc_method="TellStory"'
# The tutorial's story ends CANCELLED; the client that left is Canceled too.
check 4 "sum(grpc_server_handled_total{$story,grpc_code=\"Canceled\"})"
check 1 "sum(grpc_server_handled_total{$story,grpc_code=\"DeadlineExceeded\"})"
check 0 "sum(grpc_server_handled_total{$story,grpc_code=\"OK\"})"
check 5 "sum(grpc_server_started_total{$story,grpc_type=\"server_stream\"})"
check 5 "sum(grpc_server_msg_received_total{$story})"
check 5 "sum(grpc_server_handling_seconds_count{$story})"
check 1 "sum(grpc_server_handled_total{grpc_type=\"unary\",grpc_method=\"SayHello\",grpc_code=\"OK\"})"
check 1 "sum(grpc_server_handled_total{grpc_type=\"server_stream\",grpc_method=\"ChatStream\",grpc_code=\"OK\"})"
check 3 "sum(grpc_server_msg_sent_total{grpc_method=\"ChatStream\"})"
check 1 "sum(grpc_server_handled_total{grpc_type=\"client_stream\",grpc_method=\"CollectStream\",grpc_code=\"OK\"})"
check 1 "sum(grpc_server_handled_total{grpc_type=\"bidi_stream\",grpc_method=\"Chat\",grpc_code=\"OK\"})"
check 0 "assistant_calls_in_flight"
check 1 "assistant_stories_cached"
# Three whole stories: 144,478 bytes each, greeting and ending included.
whole=$(wc -c <"$work/story.txt")
check 1 "assistant_story_bytes_sent_total >= bool $((3 * whole))"
check 1 "assistant_story_bytes_sent_total < bool $((5 * whole))"
# The README's three starting queries, as written there: each answers.
readme_queries=(
  'sum by (grpc_method) (rate(grpc_server_handled_total{grpc_code!~"OK|Canceled"}[5m])) / sum by (grpc_method) (rate(grpc_server_handled_total[5m]))'
  'histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket[5m])))'
  'assistant_calls_in_flight'
)
for q in "${readme_queries[@]}"; do
  got=$(query "$q" || echo none)
  if [ "$got" != none ]; then
    printf '  ok   %-4s %s\n' answers "$q"
  else
    printf '  FAIL no answer: %s\n' "$q"
    failures=$((failures + 1))
  fi
done

# Of the four Canceled, one is the client that left: the server says so.
went_away=$(grep -c 'Client went away' "$work/server.log" || true)
if [ "$went_away" = 1 ]; then
  printf '  ok   %-4s %s\n' 1 "'Client went away' lines in the server's log"
else
  printf '  FAIL %s (expected 1) %s\n' "$went_away" "'Client went away' lines in the server's log"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] || fail "$failures counts differ from the mix"

say "shutdown: the endpoint answers through the grace period"
"$client" --server "127.0.0.1:$grpc_port" --step-sec 0.05 >/dev/null 2>&1 &
slow_pid=$!; pids+=("$slow_pid")
wait_for "the slow story is in flight" bash -c "curl -sf '$metrics_url' | grep -qx 'assistant_calls_in_flight 1'"
kill -TERM "$server_pid"
wait_for "the server starts draining" grep -q "Shutting down: accepting no new calls" "$work/server.log"
curl -sf "$metrics_url" | grep -qx 'assistant_calls_in_flight 1' \
  || fail "no scrape during the grace period, or it did not show the call in flight"
# The grace period is 5 s: the server must be gone well within 20.
for _ in $(seq 200); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && fail "the server did not exit within 20 s of SIGTERM"
wait "$server_pid" || fail "the server did not exit 0 after SIGTERM"
# The slow client still has text to type; the call itself is over.
kill "$slow_pid" 2>/dev/null || true
grep -q "Server stopped" "$work/server.log" || fail "the server did not log that it stopped"
if curl -sf "$metrics_url" >/dev/null 2>&1; then fail "the metrics endpoint outlived the server"; fi
say "all checks passed"
