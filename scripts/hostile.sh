#!/usr/bin/env bash
# Hostile traffic: attacks on a release assistant-server on 127.0.0.1, each
# against a freshly started server, with bounds asserted.
#
#   1. Never-reading clients: 20 connections x 1,000 TellStory streams
#      with windows of 2^31-1, never read: peak RSS under 512 MB. With
#      --max-calls 100, such streams fill the server, which then holds
#      exactly 100 calls, and six good calls on connections of their own,
#      each arriving at a full server, get their stories by making room:
#      each ends one stalled call of the busiest connection
#      RESOURCE_EXHAUSTED.
#   2. Zero-window streams: 10,000 TellStory streams with window 0: peak
#      RSS under 150 MB. At --max-calls 100, 3,000 headers-only Chat
#      streams with window 0 (chats answer before they read, so they wait
#      to send and never read their request), in waves: the server holds
#      exactly 100 calls, ending the chats whose places newer ones take,
#      and a good call makes room by ending one.
#   3. Connections and descriptors: 2,000 connections that send one byte
#      or half the preface are all closed within --handshake-timeout (2 s)
#      plus a margin, despite keepalive; under prlimit --nofile=512:512,
#      600 such connections do not keep a good client out, and the server
#      logs the abusive connections it closes at a bounded rate.
#   4. Call slots (slowloris): 17 connections x 1,000 streams whose
#      request never finishes arriving; a good client's calls succeed
#      throughout, no such stream outlives --request-timeout (5 s), and
#      peak RSS stays under 128 MB.
#   5. Deadlines: grpc-timeout 1m on a story that is always ready (sent
#      in 1-byte messages) ends DEADLINE_EXCEEDED; a stream stalled
#      on window 0, and a slow reader, are ended within 100 ms of a 1 s
#      deadline (and the server logs the first kind as DEADLINE_EXCEEDED).
#   6. Logging: with stderr a pipe nobody reads, thousands of story calls
#      (tens of MB of log lines) are served, health answers throughout, and
#      the server says how many lines it dropped; paced Rapid Reset grows
#      the log by a bounded amount, not per attacker stream.
#   7. Story library (--stories-dir): a 60 MB story for 40 callers at once
#      is read once; five 60 MB stories leave bounded memory; a FIFO
#      renamed over a story leaves no blocked thread (SIGTERM exits in
#      5 s); NOT_FOUND among 5,001 stories is short, and NOT_FOUND to both
#      grpcio and assistant-client; ListStories over them is cheap after
#      the first call.
#   8. Memory after a burst: RSS before, at the peak of, and after 10,000
#      stalled streams (figures only).
#   9. Framings: 250 paced callers at once, each with a greeting of its
#      own length, so that each would have a framing of its own: peak RSS
#      under 30 MB (the framings' budget is 4 MiB; without it, about 50 MB),
#      and every call's bytes and offsets exact.
#
# Every case runs on a fresh server (--think-time 0 --chunk-delay 0
# --shutdown-grace 2 unless it says otherwise), with its stderr in a file,
# and a well-behaved assistant-client telling stories alongside the attack,
# each compared byte for byte with the expected story (but in 1b and 2b,
# whose good calls run once the attack fills the server, and in 7e,
# which measures the server's CPU time per call). The server's VmRSS
# and VmHWM are sampled from /proc while the attack runs. After the attack
# every case checks that the server still tells a story and that health
# answers SERVING, then that SIGTERM makes it exit 0 within 5 s. Memory
# figures are in MB of 10^6 bytes.
#
# Each case is in scripts/hostile/caseN.sh, with the helpers they share in
# scripts/hostile/lib.sh. The attacks are Python programs in
# scripts/hostile/ (see the comment at
# the top of each): raw HTTP/2 frames built by hand for the floods, h2 for
# the deadline checks, and grpcio with stubs generated from
# proto/assistant.proto at run time.
#
# Installs what it needs: a Python venv (PyPI: h2, grpcio, grpcio-tools),
# and python3-venv with apt-get if the venv module is missing (needs root
# or sudo). Builds the release binaries with cargo, unless HOSTILE_BIN_DIR
# names a directory holding assistant-server and assistant-client already.
# Prints one PASS or FAIL line per check and exits non-zero if any check
# failed.
#
# Usage: scripts/hostile.sh
#        HOSTILE_CASES="1 5" scripts/hostile.sh    # only cases 1 and 5
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
attacks=$root/scripts/hostile

work=$(mktemp -d)
pids=()
# Sets parent to the parent of process PID, read from /proc (no procps).
parent_of() {
  local stat
  parent=""
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -r _ parent _ <<<"${stat##*) }"
}
# Kills a process and everything it started, by id: the process first,
# so that it cannot react to its children's end.
kill_tree() {
  local pid=$1 entry child parent children=()
  for entry in /proc/[0-9]*; do
    child=${entry#/proc/}
    if parent_of "$child" && [ "$parent" = "$pid" ]; then children+=("$child"); fi
  done
  kill -9 "$pid" 2>/dev/null || true
  for child in "${children[@]}"; do kill_tree "$child"; done
}
# Whether PID is still a child of this shell (and not a later process that
# got the id of one that has gone).
ours() {
  local parent
  parent_of "$1" && [ "$parent" = $$ ]
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if ours "$pid"; then kill_tree "$pid"; fi
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*"; }
die() { printf 'hostile: %s\n' "$*" >&2; exit 1; }
started=$SECONDS

# ------------------------------------------------------------ installs

if [ -n "${HOSTILE_BIN_DIR:-}" ]; then
  say "using the binaries in $HOSTILE_BIN_DIR"
  bin_dir=$HOSTILE_BIN_DIR
else
  say "building assistant-server and assistant-client (release)"
  cargo build --release --quiet -p assistant-server -p assistant-client || die "cargo build failed"
  bin_dir=${CARGO_TARGET_DIR:-$root/target}/release
fi
built=$SECONDS
server_bin=$bin_dir/assistant-server
client_bin=$bin_dir/assistant-client
{ [ -x "$server_bin" ] && [ -x "$client_bin" ]; } || die "no assistant-server and assistant-client in $bin_dir"

if ! python3 -m venv "$work/venv" >"$work/venv.log" 2>&1; then
  say "installing python3-venv (apt-get)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >"$work/apt.log" 2>&1 \
    || { tail -20 "$work/apt.log" >&2; die "apt-get install failed"; }
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
fi
say "installing h2 and grpcio into a venv (PyPI)"
python=$work/venv/bin/python
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$attacks/requirements.txt"

say "generating Python stubs from proto/assistant.proto"
mkdir -p "$work/py"
"$python" -m grpc_tools.protoc -Iproto --python_out="$work/py" --grpc_python_out="$work/py" proto/assistant.proto
export PYTHONPATH="$work/py:$attacks" PYTHONDONTWRITEBYTECODE=1

{
  printf "Hi Peter S from SUSTech! Here's your story:\n\n"
  cat stories/alice.txt
  printf "\nThat's it! Hope you like the story~\n"
} >"$work/expected.txt"

installed=$SECONDS
say "build took $((built - started)) s, installs $((installed - built)) s"

# ------------------------------------------------------------ cases

# shellcheck source=scripts/hostile/lib.sh
. "$attacks/lib.sh"
for case_file in "$attacks"/case[1-9].sh; do
  # shellcheck source=/dev/null
  . "$case_file"
done

# ------------------------------------------------------------ run

for case in ${HOSTILE_CASES:-1 2 3 4 5 6 7 8 9}; do
  case_started=$SECONDS
  "case$case"
  say "case $case took $((SECONDS - case_started)) s"
done

say "cases took $((SECONDS - installed)) s (build $((built - started)) s, installs $((installed - built)) s)"
echo "hostile: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  printf '  failed: %s\n' "${failures[@]}"
  exit 1
fi

