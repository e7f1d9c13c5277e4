#!/usr/bin/env bash
# Benchmarks assistant-server against its baselines, in one session, on
# this machine, taking turns: each round runs every server once, so that a
# slow minute on a shared machine hits them all alike. The baselines:
#   - nghttpd, a C HTTP/2 server sending the exact response bytes of one
#     call from a file: the practical limit, with no gRPC and no work per
#     call;
#   - the floor (bench/src/bin/floor.rs): the leanest stock tonic server
#     doing the same work;
#   - grpc-go (bench/go/server.go) and the tutorial's Python server
#     (bench/python/server.py).
# Prints one table of medians and ratios. See docs/BENCHMARKS.md for what
# each figure means.
#
# Installs what is missing with apt-get (nghttp2-client for h2load,
# nghttp2-server for nghttpd, golang-go and golang-google-grpc-dev for
# grpc-go, python3-venv) when run as root or with sudo; the Python baseline
# comes from PyPI.
# Usage: bench/run.sh [RUNS]   (RUNS: rounds per figure, default 5)
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

go_path=${GO_PATH_DEBIAN:-/usr/share/gocode}
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nghttpd >/dev/null || missing+=(nghttp2-server)
command -v go >/dev/null || missing+=(golang-go)
[ -d "$go_path/src/google.golang.org/grpc" ] || missing+=(golang-google-grpc-dev)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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

# The response bytes of one call (gRPC frames of TellStoryResponse), with or
# without the offset and story_version fields the Python server does not
# send: written to $2 if given, and their count printed.
response_body() { # offset|plain [FILE]
  python3 - "$@" <<'PY'
import hashlib, sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
with_offset = sys.argv[1] == "offset"
story = open("stories/alice.txt", "rb").read()
version = b"sha256:" + hashlib.sha256(story).hexdigest()[:32].encode()
texts = [b"Hi Peter S from SUSTech! Here's your story:\n\n"]
texts += [story[i:i + 1024] for i in range(0, len(story), 1024)]
texts += [b"\nThat's it! Hope you like the story~\n"]
frames, offset = [], 0
for text in texts:
    body = b"\x0a" + varint(len(text)) + text
    if with_offset and offset:
        body += b"\x10" + varint(offset)
    if with_offset and offset == 0:
        body += b"\x1a" + varint(len(version)) + version
    frames.append(b"\x00" + len(body).to_bytes(4, "big") + body)
    offset += len(text)
data = b"".join(frames)
if len(sys.argv) > 2:
    open(sys.argv[2], "wb").write(data)
print(len(data))
PY
}

offset_bytes=$(response_body offset)
plain_bytes=$(response_body plain)
# nghttpd answers the POST with the file at the request's path.
mkdir -p "$work/docroot/assistant.AssistantService"
response_body offset "$work/docroot/assistant.AssistantService/TellStory" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}

# Starts server $1 on port $2 and prints its pid. The server must not hold
# stdout: `$(start ...)` waits for it.
start() { # NAME PORT
  case $1 in
    project) RUST_LOG=warn "$server" --addr "127.0.0.1:$2" --think-time 0 --chunk-delay 0 >/dev/null 2>"$work/$1.log" & ;;
    project-1) RUST_LOG=warn "$server" --addr "127.0.0.1:$2" --threads 1 --think-time 0 --chunk-delay 0 >/dev/null 2>"$work/$1.log" & ;;
    project-metrics) RUST_LOG=warn "$server" --addr "127.0.0.1:$2" --metrics-addr "127.0.0.1:$(free_port)" --think-time 0 --chunk-delay 0 >/dev/null 2>"$work/$1.log" & ;;
    project-info) "$server" --addr "127.0.0.1:$2" --think-time 0 --chunk-delay 0 >/dev/null 2>"$work/$1.log" & ;;
    floor) "$floor" "127.0.0.1:$2" >/dev/null 2>"$work/$1.log" & ;;
    nghttpd) nghttpd --no-tls -d "$work/docroot" "$2" >/dev/null 2>"$work/$1.log" & ;;
    go) "$work/go-server" -addr "127.0.0.1:$2" stories/alice.txt >/dev/null 2>"$work/$1.log" & ;;
    python) (cd "$work" && exec venv/bin/python server.py --port "$2" --think-time 0 --chunk-delay 0 --quiet \
               "$OLDPWD/stories/alice.txt") >/dev/null 2>"$work/$1.log" & ;;
  esac
  echo $!
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
rss_mb() { awk '/VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# One h2load run: prints req/s, after checking that every call succeeded
# and carried every byte (h2load counts a gRPC error as an HTTP 200).
h2load_run() { # PORT CALLS BYTES_PER_CALL C M [HEADER...]
  local port=$1 calls=$2 bytes=$3 c=$4 m=$5; shift 5
  local headers=(-H 'content-type: application/grpc' -H 'te: trailers') h out succeeded data
  for h in "$@"; do headers+=(-H "$h"); done
  out=$(h2load -c "$c" -m "$m" -n "$calls" "${headers[@]}" -d "$work/request.bin" \
    "http://127.0.0.1:$port/assistant.AssistantService/TellStory")
  succeeded=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
  data=$(sed -n 's/.*(\([0-9]*\)) data.*/\1/p' <<<"$out")
  if [ "$succeeded" != "$calls" ] || [ "$data" != "$((calls * bytes))" ]; then
    echo "h2load on $port: $succeeded of $calls calls, $data bytes where $((calls * bytes)) were due" >&2
    exit 1
  fi
  printf '%s\n' "$out" >"$work/h2load.last"
  sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out"
}

# h2load's mean time for a request, in ms.
h2load_mean_ms() {
  awk '/time for request:/ { v = $6; u = $6; sub(/[a-z]+$/, "", v); if (u ~ /us$/) v /= 1000; if (u ~ /[^m]s$/ && u !~ /us$/) v *= 1000; print v }' "$work/h2load.last"
}

declare -A port pid result

say "starting every server"
for name in nghttpd floor project project-1 project-metrics project-info go python; do
  port[$name]=$(free_port)
  pid[$name]=$(start "$name" "${port[$name]}"); pids+=("${pid[$name]}")
  wait_port "${port[$name]}"
done

# Throughput: -c 16 -m 4, 20,000 calls (the Python server 200), in turns.
# `gzip` is the project's server with grpcio's and grpc-js's
# grpc-accept-encoding header on every call; `project-1` serves its
# connections on one thread (--threads 1), as nghttpd does, and leaves
# h2load the other core.
targets=(nghttpd floor project project-1 gzip project-metrics project-info go python)
server_of() { case $1 in gzip) echo project ;; *) echo "$1" ;; esac; }
for round in $(seq "$runs"); do
  say "throughput, round $round of $runs: h2load -c 16 -m 4"
  for target in "${targets[@]}"; do
    name=$(server_of "$target")
    bytes=$offset_bytes; calls=20000; extra=()
    [ "$target" = python ] && { bytes=$plain_bytes; calls=200; }
    [ "$target" = gzip ] && extra=('grpc-accept-encoding: identity,deflate,gzip')
    c0=$(cpu_ticks "${pid[$name]}")
    h2load_run "${port[$name]}" "$calls" "$bytes" 16 4 "${extra[@]}" >>"$work/$target.rps"
    c1=$(cpu_ticks "${pid[$name]}")
    awk -v d="$((c1 - c0))" -v t="$ticks_per_second" -v n="$calls" 'BEGIN { printf "%.1f\n", d * 1e6 / t / n }' >>"$work/$target.cpucall"
  done
done
for target in "${targets[@]}"; do
  result[$target.rps]=$(median <"$work/$target.rps" | awk '{ printf "%.0f", $1 }')
  result[$target.cpucall]=$(median <"$work/$target.cpucall" | awk '{ printf "%.0f", $1 }')
done

# Latency at concurrency 1: whole-call mean, in turns.
latency=(nghttpd floor project go)
for round in $(seq "$runs"); do
  say "latency, round $round of $runs: h2load -c 1 -m 1"
  for name in "${latency[@]}"; do
    h2load_run "${port[$name]}" 2000 "$offset_bytes" 1 1 >/dev/null
    h2load_mean_ms >>"$work/$name.mean"
  done
done
for name in "${latency[@]}"; do result[$name.mean]=$(median <"$work/$name.mean"); done

# The project's own load generator, in turns.
gen=(floor project go)
for round in $(seq "$runs"); do
  say "assistant-client bench, round $round of $runs"
  for name in "${gen[@]}"; do
    "$client" --server "127.0.0.1:${port[$name]}" bench --calls 10000 --concurrency 64 --connections 4 \
      --json "$work/b.json" >/dev/null 2>&1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["calls_failed"] == 0; print(r["calls_per_second"])' \
      "$work/b.json" >>"$work/$name.client"
    "$client" --server "127.0.0.1:${port[$name]}" bench --calls 2000 --concurrency 1 --connections 1 \
      --json "$work/b.json" >/dev/null 2>&1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["calls_failed"] == 0; print(r["whole_call_ms"]["p99"])' \
      "$work/b.json" >>"$work/$name.p99"
  done
done
for name in "${gen[@]}"; do
  result[$name.client]=$(median <"$work/$name.client" | awk '{ printf "%.0f", $1 }')
  result[$name.p99]=$(median <"$work/$name.p99")
done

for name in nghttpd floor project project-1 project-metrics project-info go python; do
  result[$name.rss]=$(rss_mb "${pid[$name]}")
done
# The INFO server's log must be whole: a line for every call's end, the
# same number of lines for every call, and none dropped.
info_calls=$((runs * 20000))
info_ended=$(grep -c 'Call ended' "$work/project-info.log" || true)
info_lines=$(grep -c 'call#\|call{' "$work/project-info.log" || true)
if [ "$info_ended" != "$info_calls" ] || [ $((info_lines % info_calls)) -ne 0 ] \
  || grep -q 'were dropped' "$work/project-info.log"; then
  echo "the INFO server's log is not whole: $info_ended calls ended, $info_lines lines" >&2; exit 1
fi
for name in "${!pid[@]}"; do kill "${pid[$name]}" 2>/dev/null || true; done
wait 2>/dev/null || true

say "client wall time for a whole story at --step-sec 0 (connect included), $runs runs"
p=$(free_port); s_pid=$(start project "$p"); pids+=("$s_pid"); wait_port "$p"
for _ in $(seq "$runs"); do
  s=$(date +%s%N)
  "$client" --server "127.0.0.1:$p" --step-sec 0 >"$work/story.txt" 2>/dev/null
  echo "$(( ($(date +%s%N) - s) / 1000 ))"
  cmp -s "$work/story.txt" <(printf "Hi Peter S from SUSTech! Here's your story:\n\n"; cat stories/alice.txt; printf "\nThat's it! Hope you like the story~\n") \
    || { echo "the client's story differs" >&2; exit 1; }
done | awk '{ print $1 / 1000 }' >"$work/wall"
result[wall]=$(median <"$work/wall")

say "typing accuracy: --buffer-size 10 --step-sec 0.001 over the whole story"
s=$(date +%s%N)
"$client" --server "127.0.0.1:$p" --buffer-size 10 --step-sec 0.001 >/dev/null 2>&1
typing=$(( ($(date +%s%N) - s) / 1000000 ))
chars=$(python3 -c 'import sys; print(len(("Hi Peter S from SUSTech! Here'"'"'s your story:\n\n" + open("stories/alice.txt", encoding="utf-8").read() + "\nThat'"'"'s it! Hope you like the story~\n")))')
nominal=$(( chars / 10 ))
kill "$s_pid"; wait "$s_pid" 2>/dev/null || true

# Paced calls: the default pacing (3 s think, 0.05 s per chunk), so a story
# takes about 10 s; the figures are for the server alone. 20,000 calls need
# --max-calls above them, and --request-timeout above the default 5 s: a
# load generator on the same two cores opening 10,000 calls at once can
# take longer than that to send all their requests.
paced() { # LABEL CALLS DRIVER
  local label=$1 calls=$2 driver=$3 p s_pid c0 c1 t0 t1
  p=$(free_port)
  RUST_LOG=warn "$server" --addr "127.0.0.1:$p" --max-calls 30000 --request-timeout 60 2>"$work/paced.log" & s_pid=$!; pids+=("$s_pid")
  wait_port "$p"
  say "$calls concurrent paced calls, driven by $driver"
  c0=$(cpu_ticks "$s_pid"); t0=$(date +%s.%N)
  case $driver in
    h2load)
      h2load_run "$p" "$calls" "$offset_bytes" "$((calls / 100))" 100 >/dev/null
      result[$label.ok]=$calls ;;
    client)
      "$client" --server "127.0.0.1:$p" bench --calls "$calls" --concurrency "$calls" --connections "$((calls / 100))" \
        --json "$work/paced.json" >/dev/null 2>&1 || { echo "not every paced call completed" >&2; cat "$work/paced.json" >&2; exit 1; }
      result[$label.ok]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["calls_ok"])' "$work/paced.json") ;;
  esac
  t1=$(date +%s.%N); c1=$(cpu_ticks "$s_pid")
  result[$label.rss]=$(rss_mb "$s_pid")
  result[$label.cores]=$(awk -v d="$((c1 - c0))" -v t="$ticks_per_second" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", d / t / (b - a) }')
  result[$label.kib]=$(awk -v r="${result[$label.rss]}" -v n="$calls" 'BEGIN { printf "%.1f", r * 1024 / n }')
  kill "$s_pid"; wait "$s_pid" 2>/dev/null || true
}
paced p10h 10000 h2load
paced p10c 10000 client
paced p20h 20000 h2load

r() { echo "${result[$1]}"; }
cat <<TABLE
cores: $(nproc), shared by the load generator and the server; rounds per figure: $runs (medians, servers in turns)

| figure | project | nghttpd | floor | grpc-go | python | project / nghttpd | project / floor |
|---|---|---|---|---|---|---|---|
| calls/s, h2load -c 16 -m 4, logs at warn | $(r project.rps) | $(r nghttpd.rps) | $(r floor.rps) | $(r go.rps) | $(r python.rps) | $(ratio "$(r project.rps)" "$(r nghttpd.rps)") | $(ratio "$(r project.rps)" "$(r floor.rps)") |
| server CPU per call (µs), same runs | $(r project.cpucall) | $(r nghttpd.cpucall) | $(r floor.cpucall) | $(r go.cpucall) | $(r python.cpucall) | $(ratio "$(r project.cpucall)" "$(r nghttpd.cpucall)") | $(ratio "$(r project.cpucall)" "$(r floor.cpucall)") |
| calls/s, same, --threads 1 (one thread, as nghttpd) | $(r project-1.rps) | | | | | $(ratio "$(r project-1.rps)" "$(r nghttpd.rps)") | |
| server CPU per call (µs), same runs | $(r project-1.cpucall) | | | | | $(ratio "$(r project-1.cpucall)" "$(r nghttpd.cpucall)") | |
| calls/s, same, with \`grpc-accept-encoding: identity,deflate,gzip\` | $(r gzip.rps) ($(ratio "$(r gzip.rps)" "$(r project.rps)") of plain; $(r gzip.cpucall) µs a call) | | | | | | |
| calls/s, same, with --metrics-addr | $(r project-metrics.rps) ($(ratio "$(r project-metrics.rps)" "$(r project.rps)") of without; $(r project-metrics.cpucall) µs a call) | | | | | | |
| calls/s, same, default INFO logs to a file | $(r project-info.rps) ($(ratio "$(r project-info.rps)" "$(r project.rps)") of quiet; $(r project-info.cpucall) µs a call; $((info_lines / info_calls)) lines a call, every one written) | | | | | | |
| whole-call mean (ms), h2load -c 1 -m 1 | $(r project.mean) | $(r nghttpd.mean) | $(r floor.mean) | $(r go.mean) | | $(ratio "$(r project.mean)" "$(r nghttpd.mean)") | $(ratio "$(r project.mean)" "$(r floor.mean)") |
| calls/s, assistant-client bench -c 64 over 4 connections | $(r project.client) | | $(r floor.client) | $(r go.client) | | | $(ratio "$(r project.client)" "$(r floor.client)") |
| whole-call p99 (ms), assistant-client bench -c 1 | $(r project.p99) | | $(r floor.p99) | $(r go.p99) | | | |
| server peak RSS (MB) over the runs | $(r project.rss) | $(r nghttpd.rss) | $(r floor.rss) | $(r go.rss) | $(r python.rss) | | |
| client wall time, whole story at --step-sec 0 (ms) | $(r wall) | | | | | | |
| typing, --buffer-size 10 --step-sec 0.001 (s) | $(awk -v t="$typing" 'BEGIN { printf "%.2f", t / 1000 }') (nominal $(awk -v n="$nominal" 'BEGIN { printf "%.2f", n / 1000 }'), off by $(awk -v t="$typing" -v n="$nominal" 'BEGIN { printf "%+.1f%%", (t - n) * 100 / n }')) | | | | | | |
| 10,000 paced calls, h2load -c 100 -m 100: completed, peak RSS (MB), mean cores | $(r p10h.ok), $(r p10h.rss) ($(r p10h.kib) KiB a call), $(r p10h.cores) | | | | | | |
| 10,000 paced calls, assistant-client bench: completed, peak RSS (MB), mean cores | $(r p10c.ok), $(r p10c.rss) ($(r p10c.kib) KiB a call), $(r p10c.cores) | | | | | | |
| 20,000 paced calls, h2load -c 200 -m 100: completed, peak RSS (MB), mean cores | $(r p20h.ok), $(r p20h.rss) ($(r p20h.kib) KiB a call), $(r p20h.cores) | | | | | | |
TABLE
