#!/usr/bin/env bash
# Benchmarks assistant-server against its baselines, in one session, on
# this machine: the floor (bench/src/bin/floor.rs), grpc-go
# (bench/go/server.go) and the tutorial's Python server
# (bench/python/server.py). Prints one table of medians and ratios to the
# floor. See docs/BENCHMARKS.md for what each figure means.
#
# Needs h2load (Debian: nghttp2-client), Go with grpc-go (Debian: golang-go,
# golang-google-grpc-dev), python3 with venv, and PyPI.
# Usage: bench/run.sh [RUNS]   (RUNS: runs per figure, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*" >&2; }

command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1; }
# Debian's Go packages live in a GOPATH; the build needs no network.
go_path=${GO_PATH_DEBIAN:-/usr/share/gocode}
command -v go >/dev/null && [ -d "$go_path/src/google.golang.org/grpc" ] \
  || { echo "Go or grpc-go is missing: apt-get install golang-go golang-google-grpc-dev" >&2; exit 1; }

say "building (release)"
cargo build --release --quiet -p assistant-server -p assistant-client -p assistant-bench
server=target/release/assistant-server
client=target/release/assistant-client
floor=target/release/floor

say "building the grpc-go baseline"
GO111MODULE=off GOPATH="$go_path" go build -o "$work/go-server" bench/go/server.go

say "setting up the Python baseline"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r bench/python/requirements.txt
"$work/venv/bin/python" -m grpc_tools.protoc -Iproto --python_out="$work" --grpc_python_out="$work" proto/assistant.proto
cp bench/python/server.py "$work/"

# The pre-encoded request: a gRPC frame holding
# TellStoryRequest{user_name: "Peter S", institution: "SUSTech"}.
python3 - "$work/request.bin" <<'PY'
import struct, sys
msg = b"\x0a\x07Peter S\x12\x07SUSTech"
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
PY

# The response bytes one call must carry (gRPC frames of TellStoryResponse),
# with or without the offset and story_version fields the Python server does
# not send.
expected_data() {
  python3 - "$1" <<'PY'
import sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
import hashlib
with_offset = sys.argv[1] == "offset"
story = open("stories/alice.txt", "rb").read()
version = b"sha256:" + hashlib.sha256(story).hexdigest()[:32].encode()
texts = [b"Hi Peter S from SUSTech! Here's your story:\n\n"]
texts += [story[i:i + 1024] for i in range(0, len(story), 1024)]
texts += [b"\nThat's it! Hope you like the story~\n"]
total, offset = 0, 0
for text in texts:
    body = b"\x0a" + varint(len(text)) + text
    if with_offset and offset:
        body += b"\x10" + varint(offset)
    if with_offset and offset == 0:
        body += b"\x1a" + varint(len(version)) + version
    total += 5 + len(body)
    offset += len(text)
print(total)
PY
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}

# Starts server $1 (project, project-info, floor, go, python) on port $2; prints
# its pid. The server must not hold stdout: `$(start ...)` waits for it.
start() {
  case $1 in
    project) RUST_LOG=warn "$server" --addr "127.0.0.1:$2" --think-time 0 --chunk-delay 0 >/dev/null 2>"$work/$1.log" & ;;
    project-info) "$server" --addr "127.0.0.1:$2" --think-time 0 --chunk-delay 0 >/dev/null 2>"$work/$1.log" & ;;
    floor) "$floor" "127.0.0.1:$2" >/dev/null 2>"$work/$1.log" & ;;
    go) "$work/go-server" -addr "127.0.0.1:$2" stories/alice.txt >/dev/null 2>"$work/$1.log" & ;;
    python) (cd "$work" && exec venv/bin/python server.py --port "$2" --think-time 0 --chunk-delay 0 --quiet \
               "$OLDPWD/stories/alice.txt") >/dev/null 2>"$work/$1.log" & ;;
  esac
  echo $!
}

cpu_seconds() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }
# Mean cores used between two readings: cpu0 cpu1 t0 t1 (seconds).
cores_used() { awk -v c0="$1" -v c1="$2" -v t0="$3" -v t1="$4" 'BEGIN { printf "%.2f", (c1 - c0) / (t1 - t0) }'; }
rss_mb() { awk '/VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# h2load throughput: prints req/s, after checking every byte arrived.
h2load_rps() { # port calls expected-bytes-per-call [c] [m]
  local out
  out=$(h2load -c "${4:-16}" -m "${5:-4}" -n "$2" -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$work/request.bin" "http://127.0.0.1:$1/assistant.AssistantService/TellStory")
  local data succeeded
  succeeded=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
  data=$(sed -n 's/.*(\([0-9]*\)) data.*/\1/p' <<<"$out")
  if [ "$succeeded" != "$2" ] || [ "$data" != "$(($2 * $3))" ]; then
    echo "h2load: $succeeded of $2 calls, $data bytes where $(($2 * $3)) were due" >&2; exit 1
  fi
  sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out"
}

declare -A result
offset_bytes=$(expected_data offset)
plain_bytes=$(expected_data plain)

for name in floor project project-info go python; do
  port=$(free_port)
  pid=$(start "$name" "$port"); pids+=("$pid")
  wait_port "$port"
  bytes=$offset_bytes; calls=20000
  [ "$name" = python ] && { bytes=$plain_bytes; calls=200; }
  say "$name: h2load -c 16 -m 4 -n $calls, $runs runs"
  cpu0=$(cpu_seconds "$pid"); t0=$(date +%s.%N)
  for _ in $(seq "$runs"); do h2load_rps "$port" "$calls" "$bytes"; done >"$work/$name.rps"
  t1=$(date +%s.%N); cpu1=$(cpu_seconds "$pid")
  result[$name.rps]=$(median <"$work/$name.rps" | awk '{ printf "%.0f", $1 }')
  result[$name.cpu]=$(cores_used "$cpu0" "$cpu1" "$t0" "$t1")
  result[$name.cpucall]=$(awk -v c0="$cpu0" -v c1="$cpu1" -v n="$((runs * calls))" 'BEGIN { printf "%.0f", (c1 - c0) * 1e6 / n }')
  result[$name.rss]=$(rss_mb "$pid")
  if [ "$name" != python ]; then
    say "$name: h2load -c 1 -m 1 (latency), $runs runs"
    for _ in $(seq "$runs"); do
      h2load -c 1 -m 1 -n 2000 -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/request.bin" \
        "http://127.0.0.1:$port/assistant.AssistantService/TellStory" | awk '/time for request:/ { v = $6; u = $6; sub(/[a-z]+$/, "", v); if (u ~ /us$/) v /= 1000; print v }'
    done >"$work/$name.mean"
    result[$name.mean]=$(median <"$work/$name.mean")
    say "$name: assistant-client bench (latency at concurrency 1), $runs runs"
    for _ in $(seq "$runs"); do
      "$client" --server "127.0.0.1:$port" bench --calls 2000 --concurrency 1 --connections 1 --json "$work/b.json" >/dev/null 2>&1 || true
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["whole_call_ms"]["p99"])' "$work/b.json"
    done >"$work/$name.p99"
    result[$name.p99]=$(median <"$work/$name.p99")
    say "$name: assistant-client bench (throughput), $runs runs"
    for _ in $(seq "$runs"); do
      "$client" --server "127.0.0.1:$port" bench --calls 10000 --concurrency 64 --connections 4 --json "$work/b.json" >/dev/null 2>&1
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["calls_failed"] == 0; print(r["calls_per_second"])' "$work/b.json"
    done >"$work/$name.client"
    result[$name.client]=$(median <"$work/$name.client" | awk '{ printf "%.0f", $1 }')
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

say "client wall time for a whole story at --step-sec 0 (connect included), $runs runs"
port=$(free_port); pid=$(start project "$port"); pids+=("$pid"); wait_port "$port"
for _ in $(seq "$runs"); do
  s=$(date +%s%N)
  "$client" --server "127.0.0.1:$port" --step-sec 0 >"$work/story.txt" 2>/dev/null
  echo "$(( ($(date +%s%N) - s) / 1000 ))"
  cmp -s "$work/story.txt" <(printf "Hi Peter S from SUSTech! Here's your story:\n\n"; cat stories/alice.txt; printf "\nThat's it! Hope you like the story~\n") \
    || { echo "the client's story differs" >&2; exit 1; }
done | awk '{ print $1 / 1000 }' >"$work/wall"
result[wall]=$(median <"$work/wall")

say "typing accuracy: --buffer-size 10 --step-sec 0.001 over the whole story"
s=$(date +%s%N)
"$client" --server "127.0.0.1:$port" --buffer-size 10 --step-sec 0.001 >/dev/null 2>&1
typing=$(( ($(date +%s%N) - s) / 1000000 ))
chars=$(python3 -c 'import sys; print(len(("Hi Peter S from SUSTech! Here'"'"'s your story:\n\n" + open("stories/alice.txt", encoding="utf-8").read() + "\nThat'"'"'s it! Hope you like the story~\n")))')
nominal=$(( chars / 10 ))
kill "$pid"; wait "$pid" 2>/dev/null || true

say "10,000 concurrent calls at the default pacing (3 s think, 0.05 s per chunk)"
port=$(free_port)
RUST_LOG=warn "$server" --addr "127.0.0.1:$port" 2>"$work/pacing.log" & pid=$!; pids+=("$pid")
wait_port "$port"
cpu0=$(cpu_seconds "$pid"); t0=$(date +%s.%N)
"$client" --server "127.0.0.1:$port" bench --calls 10000 --concurrency 10000 --connections 100 --json "$work/pacing.json" >/dev/null 2>&1 \
  || { echo "not every paced call completed" >&2; cat "$work/pacing.json" >&2; exit 1; }
t1=$(date +%s.%N); cpu1=$(cpu_seconds "$pid")
paced_ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["calls_ok"])' "$work/pacing.json")
paced_rss=$(rss_mb "$pid")
paced_cpu=$(cores_used "$cpu0" "$cpu1" "$t0" "$t1")
kill "$pid"; wait "$pid" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<TABLE
cores: $(nproc); runs per figure: $runs (medians)

| figure | project | floor | grpc-go | python | project / floor |
|---|---|---|---|---|---|
| calls/s, h2load -c 16 -m 4, logs at warn | ${result[project.rps]} | ${result[floor.rps]} | ${result[go.rps]} | ${result[python.rps]} | $(ratio "${result[project.rps]}" "${result[floor.rps]}") |
| calls/s, same, default INFO logs to a file | ${result[project-info.rps]} | | | | $(ratio "${result[project-info.rps]}" "${result[floor.rps]}") (info / quiet: $(ratio "${result[project-info.rps]}" "${result[project.rps]}")) |
| project's calls/s over each baseline's | | $(ratio "${result[project.rps]}" "${result[floor.rps]}") | $(ratio "${result[project.rps]}" "${result[go.rps]}") | $(ratio "${result[project.rps]}" "${result[python.rps]}") | |
| server CPU (cores) during the h2load runs | ${result[project.cpu]} | ${result[floor.cpu]} | ${result[go.cpu]} | ${result[python.cpu]} | |
| server CPU per call (µs) during the h2load runs | ${result[project.cpucall]} | ${result[floor.cpucall]} | ${result[go.cpucall]} | ${result[python.cpucall]} | $(ratio "${result[project.cpucall]}" "${result[floor.cpucall]}") |
| server peak RSS (MB) | ${result[project.rss]} | ${result[floor.rss]} | ${result[go.rss]} | ${result[python.rss]} | |
| calls/s, assistant-client bench -c 64 over 4 connections | ${result[project.client]} | ${result[floor.client]} | ${result[go.client]} | | $(ratio "${result[project.client]}" "${result[floor.client]}") |
| whole-call mean (ms), h2load -c 1 -m 1 | ${result[project.mean]} | ${result[floor.mean]} | ${result[go.mean]} | | $(ratio "${result[project.mean]}" "${result[floor.mean]}") |
| whole-call p99 (ms), assistant-client bench -c 1 | ${result[project.p99]} | ${result[floor.p99]} | ${result[go.p99]} | | |
| client wall time, whole story at --step-sec 0 (ms) | ${result[wall]} | | | | |
| typing, --buffer-size 10 --step-sec 0.001 (s) | $(awk -v t="$typing" 'BEGIN { printf "%.2f", t / 1000 }') (nominal $(awk -v n="$nominal" 'BEGIN { printf "%.2f", n / 1000 }'), off by $(awk -v t="$typing" -v n="$nominal" 'BEGIN { printf "%+.1f%%", (t - n) * 100 / n }')) | | | | |
| 10,000 concurrent paced calls: completed, peak RSS (MB), mean CPU (cores) | $paced_ok, $paced_rss, $paced_cpu ($(awk -v r="$paced_rss" 'BEGIN { printf "%.1f", r * 1024 / 10000 }') KiB per stream) | | | | |
TABLE
