#!/usr/bin/env bash
# Scale-out, shown end to end on loopback: two assistant-server replicas
# behind nginx (deploy/nginx.conf), a story told through nginx, the replica
# serving it killed mid-stream, and the client resuming on the other one
# with byte-identical output. Exits non-zero if anything differs.
#
# Installs nginx from Debian's packages if it is missing (needs root or
# sudo). Usage: scripts/scale-out.sh
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

if ! command -v nginx >/dev/null; then
  say "installing nginx"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq nginx-light >/dev/null
fi

say "building"
cargo build --quiet -p assistant-server -p assistant-client
server=target/debug/assistant-server
client=target/debug/assistant-client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
front=$(free_port); one=$(free_port); two=$(free_port)

# Waits until the health service at $1 answers SERVING.
wait_healthy() {
  for _ in $(seq 100); do
    "$client" --server "127.0.0.1:$1" health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing healthy at 127.0.0.1:$1" >&2
  return 1
}

say "starting two replicas on ports $one and $two"
declare -A replica_pid
for port in "$one" "$two"; do
  "$server" --addr "127.0.0.1:$port" --think-time 0 --chunk-delay 0.01 --shutdown-grace 1 \
    2>"$work/replica-$port.log" &
  replica_pid[$port]=$!
  pids+=($!)
done
wait_healthy "$one"
wait_healthy "$two"

say "starting nginx on port $front"
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
sed -e "s/127.0.0.1:50060/127.0.0.1:$front/" -e "s/127.0.0.1:50061/127.0.0.1:$one/" \
  -e "s/127.0.0.1:50062/127.0.0.1:$two/" deploy/nginx.conf >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
wait_healthy "$front"

say "telling a story through nginx"
"$client" --server "127.0.0.1:$front" --buffer-size 1024 --step-sec 0 --retry-backoff 0.2 \
  >"$work/out.txt" 2>"$work/client.log" &
client_pid=$!
pids+=($client_pid)
for _ in $(seq 200); do
  [ "$(wc -c <"$work/out.txt")" -ge 30000 ] && break
  sleep 0.05
done

serving=""
for port in "$one" "$two"; do
  grep -q "Received story-telling request" "$work/replica-$port.log" && serving=$port
done
[ -n "$serving" ] || { echo "no replica logged the call" >&2; exit 1; }
other=$one; [ "$serving" = "$one" ] && other=$two
say "killing the replica on port $serving after $(wc -c <"$work/out.txt") bytes"
kill -9 "${replica_pid[$serving]}"

status=0
wait "$client_pid" || status=$?
{
  printf "Hi Peter S from SUSTech! Here's your story:\n\n"
  cat stories/alice.txt
  printf "\nThat's it! Hope you like the story~\n"
} >"$work/expected.txt"

echo "-- client log"; cat "$work/client.log"
echo "-- the other replica"; grep -E "Received|resume" "$work/replica-$other.log" || true
[ "$status" -eq 0 ] || { echo "the client exited $status" >&2; exit 1; }
cmp "$work/out.txt" "$work/expected.txt"
grep -q "Connection lost" "$work/client.log"
grep -q "Received request to resume alice.txt" "$work/replica-$other.log"
say "scale-out: ok ($(wc -c <"$work/out.txt") bytes, byte-identical, resumed on port $other)"
