#!/usr/bin/env bash
# Proves a stock Python grpcio client, generated from proto/assistant.proto
# with grpcio-tools, works against the Rust server unchanged: it must
# receive greeting + story + ending byte for byte, then status CANCELLED.
# Then grpcio's own reflection and health clients, with no .proto files,
# must find and describe every service, and see each one SERVING.
#
# Needs python3 with venv and pip, and PyPI. Usage: scripts/python-interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building the server"
cargo build --quiet -p assistant-server

echo "== installing grpcio into a venv"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  grpcio grpcio-tools grpcio-reflection grpcio-health-checking

echo "== generating Python stubs from proto/assistant.proto"
"$work/venv/bin/python" -m grpc_tools.protoc -Iproto --python_out="$work" --grpc_python_out="$work" proto/assistant.proto
cp scripts/interop/tutorial_client.py "$work/"

echo "== starting the server on a free port"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/assistant-server --addr "127.0.0.1:$port" --think-time 0 --chunk-delay 0 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q "Server started on port" "$work/server.log" && break
  sleep 0.1
done

echo "== running the Python client"
"$work/venv/bin/python" "$work/tutorial_client.py" "127.0.0.1:$port" >"$work/out.txt" 2>"$work/client.log"
{
  printf "Hi Peter S from SUSTech! Here's your story:\n\n"
  cat stories/alice.txt
  printf "\nThat's it! Hope you like the story~\n"
} >"$work/expected.txt"

cmp "$work/out.txt" "$work/expected.txt"
grep -q "Stream cancelled by server. Exiting gracefully." "$work/client.log"
echo "python interop: ok ($(wc -c <"$work/out.txt") bytes, ended with CANCELLED)"

echo "== reflection and health through grpcio's own clients"
"$work/venv/bin/python" scripts/interop/reflection_and_health.py "127.0.0.1:$port"
