#!/usr/bin/env bash
# Interoperability: our Rust server and client against stock gRPC stacks.
#
#   1. Stock clients against assistant-server: Python grpcio (sync and
#      grpc.aio), Node @grpc/grpc-js, Go grpc-go. Each: TellStory byte for
#      byte ending CANCELLED, the four call shapes, a mid-story cancel the
#      server logs, health Check, and reflection (list, describe, and a
#      SayHello built only from the reflected descriptors).
#   2. assistant-client against stock servers: the story tutorial's Python
#      server (its two-field assistant.proto), a grpc-js and a grpc-go story
#      server, and the call-shapes tutorial's four servers, where our
#      client's output must equal the tutorial's own client's.
#   3. The call-shapes tutorial's own clients against assistant-server.
#   4. grpc-js and the CANCELLED ending: grpc-js reports a non-OK status as
#      soon as it arrives and drops messages not yet delivered. A fast
#      reader gets every byte; a slow reader loses the tail with --finish
#      cancel (and with the tutorial's own server), and gets every byte with
#      --finish ok; with --compress-responses even a fast reader loses it.
#
# Every peer's stubs come from .proto files at run time: grpcio-tools for
# Python, @grpc/proto-loader for Node, protoc-gen-go and protoc-gen-go-grpc
# (Debian) through grpcio-tools' protoc for Go. The peers live in
# scripts/interop/ (see the comment at the top of each).
#
# Installs what it needs: a Python venv (PyPI), npm packages in a temporary
# directory, and Debian's Go packages with apt-get when they are missing
# (needs root or sudo). Prints one PASS or FAIL line per check and exits
# non-zero if any check failed.
#
# Usage: scripts/interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
peers=$root/scripts/interop

work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '== %s\n' "$*"; }
die() { printf 'interop: %s\n' "$*" >&2; exit 1; }
started=$SECONDS

# ------------------------------------------------------------ installs

say "building assistant-server and assistant-client"
cargo build --quiet -p assistant-server -p assistant-client
server_bin=$root/target/debug/assistant-server
client_bin=$root/target/debug/assistant-client

# Debian's Go, grpc-go and protobuf-go, used in GOPATH mode with no
# network. golang/protobuf 1.5 (not 1.3) so that grpc-go's codec accepts
# the APIv2 messages protoc-gen-go writes.
go_packages=(golang-go golang-google-grpc-dev golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc)
missing=()
for package in "${go_packages[@]}"; do
  dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >"$work/apt.log" 2>&1 \
    || { tail -20 "$work/apt.log" >&2; die "apt-get install failed"; }
fi

say "installing grpcio into a venv (PyPI)"
python3 -m venv "$work/venv"
python=$work/venv/bin/python
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$peers/python/requirements.txt"

say "installing grpc-js into a temporary directory (npm)"
mkdir -p "$work/node"
cp "$peers/node/package.json" "$peers/node/client.js" "$peers/node/server.js" "$work/node/"
(cd "$work/node" && npm install --silent --no-audit --no-fund --no-update-notifier >"$work/npm.log" 2>&1) \
  || { tail -20 "$work/npm.log" >&2; die "npm install failed"; }

say "generating Python stubs from proto/*.proto"
mkdir -p "$work/py"
"$python" -m grpc_tools.protoc -Iproto --python_out="$work/py" --grpc_python_out="$work/py" \
  proto/assistant.proto proto/hello_world.proto proto/messages.proto

say "generating Go stubs from proto/*.proto and building the Go peers"
gopath=$work/go
mkdir -p "$gopath/src/interop"
cp -r "$peers/go/client" "$peers/go/server" "$gopath/src/interop/"
# The .proto files name no Go package: map each file to one.
go_map="Massistant.proto=interop/assistantpb,Mhello_world.proto=interop/hellopb,Mmessages.proto=interop/chatpb"
"$python" -m grpc_tools.protoc -Iproto \
  --plugin=protoc-gen-go="$(command -v protoc-gen-go)" --plugin=protoc-gen-go-grpc="$(command -v protoc-gen-go-grpc)" \
  --go_out="$gopath/src" --go_opt="$go_map" --go-grpc_out="$gopath/src" --go-grpc_opt="$go_map" \
  proto/assistant.proto proto/hello_world.proto proto/messages.proto
go_env=(env GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" GOCACHE="$work/gocache")
(cd "$gopath" && "${go_env[@]}" go build -o "$work/go-client" interop/client \
  && "${go_env[@]}" go build -o "$work/go-server" interop/server)

say "generating the tutorial programs' stubs from their own .proto files"
cp -r "$peers/tutorial" "$work/tutorial"
cp stories/alice.txt "$work/tutorial/story/"
for dir in story unary server_streaming client_streaming bidirectional; do
  (cd "$work/tutorial/$dir" && "$python" -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. ./*.proto)
done

{
  printf "Hi Peter S from SUSTech! Here's your story:\n\n"
  cat stories/alice.txt
  printf "\nThat's it! Hope you like the story~\n"
} >"$work/expected.txt"
story_messages=$(( ($(wc -c <stories/alice.txt) + 1023) / 1024 + 2 ))
printf 'Hello, Hyeonghwan!\n' >"$work/hello.expected"
printf 'msg1 msg2 msg3\n' >"$work/collect.expected"

installed=$SECONDS
say "installs and builds took $((installed - started)) s"

# ------------------------------------------------------------ helpers

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts a server in the background, logging to $work/$1.log, and waits
# (10 s at most) for its port to accept connections. $2 is the port; the
# rest is the command.
start_server() {
  local name=$1 port=$2
  shift 2
  "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  eval "pid_$name=$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; die "server $name exited"; }
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$work/$name.log" >&2
  die "server $name did not listen on port $port within 10 s"
}

stop_server() {
  local pid_var="pid_$1"
  kill "${!pid_var}" 2>/dev/null || true
  wait "${!pid_var}" 2>/dev/null || true
}

# shellcheck source=scripts/lib/checks.sh
. scripts/lib/checks.sh

# same EXPECTED ACTUAL: byte-for-byte, with a diff when not.
same() {
  cmp -s "$1" "$2" && return 0
  echo "expected $(wc -c <"$1") bytes ($1), got $(wc -c <"$2") ($2)"
  diff <(head -c 2000 "$1") <(head -c 2000 "$2") | head -20 || true
  return 1
}

# The peers. Each takes HOST:PORT and a command (see its header).
peer() {
  local stack=$1
  shift
  case $stack in
    python-sync) PYTHONPATH="$work/py" timeout 60 "$python" "$peers/python/client.py" "$@" ;;
    python-aio) PYTHONPATH="$work/py" timeout 60 "$python" "$peers/python/client.py" --aio "$@" ;;
    node) timeout 60 node "$work/node/client.js" "$root/proto" "$@" ;;
    go) timeout 60 "$work/go-client" "$@" ;;
  esac
}

ours() { timeout 60 "$client_bin" --server "127.0.0.1:$1" "${@:2}"; }

# tutorial DIR PROGRAM PORT [VAR=VALUE...]: the command that runs the
# tutorial's DIR/PROGRAM (client.py or server.py) as the tutorial does,
# `python PROGRAM` in its folder, with its port 50051 rewritten to PORT.
tutorial() {
  local dir=$work/tutorial/$1 program=$2 port=$3
  shift 3
  sed "s/50051/$port/" "$dir/$program" >"$dir/${program%.py}_$port.py"
  tutorial_command=(env -C "$dir" "$@" "$python" "${program%.py}_$port.py")
}
# Runs the tutorial's client DIR/client.py against PORT.
tutorial_client() {
  tutorial "$1" client.py "$2"
  timeout 60 "${tutorial_command[@]}"
}

# ------------------------------------------------------------ our server

fast_port=$(free_port)
paced_port=$(free_port)
ok_port=$(free_port)
quick=(--think-time 0 --chunk-delay 0 --chat-stream-delay 0 --chat-reply-delay 0)
start_server fast "$fast_port" "$server_bin" --addr "127.0.0.1:$fast_port" "${quick[@]}"
# Paced, so that a client can leave mid-story.
start_server paced "$paced_port" "$server_bin" --addr "127.0.0.1:$paced_port" --think-time 0 --chunk-delay 0.05
start_server finish_ok "$ok_port" "$server_bin" --addr "127.0.0.1:$ok_port" "${quick[@]}" --finish ok

say "1. stock clients against assistant-server"

check_story() {
  local rc=0
  peer "$1" "127.0.0.1:$fast_port" story >"$work/out" 2>"$work/err" || rc=$?
  cat "$work/err"
  [ "$rc" -eq 0 ] || { echo "exit $rc: the call did not end CANCELLED"; return 1; }
  same "$work/expected.txt" "$work/out"
  grep -q 'story finished' "$work/err" || { echo "the status message is not 'story finished'"; return 1; }
  detail "$(wc -c <"$work/out") bytes, status CANCELLED \"story finished\""
}
check_output() { # STACK COMMAND EXPECTED_FILE
  peer "$1" "127.0.0.1:$fast_port" "$2" >"$work/out"
  same "$3" "$work/out"
}
check_cancel() {
  local before after bytes went
  before=$(grep -c "Client went away" "$work/paced.log" || true)
  bytes=$(peer "$1" "127.0.0.1:$paced_port" cancel)
  for _ in $(seq 50); do
    after=$(grep -c "Client went away" "$work/paced.log" || true)
    [ "$after" -gt "$before" ] && break
    sleep 0.1
  done
  went=$(grep "Client went away" "$work/paced.log" | tail -n 1)
  echo "client got $bytes bytes; server: $went"
  [ "$after" -gt "$before" ] || { echo "the server logged no 'Client went away' within 5 s"; return 1; }
  [[ $went =~ Client\ went\ away:\ Peter\ S\ after\ ([0-9]+)\ bytes\ of\ text\ were\ queued ]]
  [ "${BASH_REMATCH[1]}" -ge "$bytes" ]
  detail "after $bytes bytes; server logged: Client went away: Peter S after ${BASH_REMATCH[1]} bytes of text were queued for it"
}
check_health() {
  peer "$1" "127.0.0.1:$fast_port" health
}
check_reflect() {
  peer "$1" "127.0.0.1:$fast_port" reflect
  case $1 in
    node) detail "v1 and v1alpha, @grpc/reflection's .proto files, descriptors loaded by proto-loader" ;;
    go) detail "v1alpha, grpc-go's client stubs, descriptors built by protodesc" ;;
    python-sync) detail "v1alpha, grpcio-reflection's ProtoReflectionDescriptorDatabase" ;;
    python-aio) detail "v1alpha, grpcio-reflection's stubs on a grpc.aio channel" ;;
  esac
}

for stack in python-sync python-aio node go; do
  check "$stack -> our server: TellStory byte for byte, ends CANCELLED" check_story "$stack"
  check "$stack -> our server: unary SayHello" check_output "$stack" hello "$work/hello.expected"
  check "$stack -> our server: server streaming ChatStream" check_output "$stack" chat-stream "$peers/tutorial/server_streaming/expected.txt"
  check "$stack -> our server: client streaming CollectStream" check_output "$stack" collect "$work/collect.expected"
  check "$stack -> our server: bidirectional Chat" check_output "$stack" chat "$peers/tutorial/bidirectional/expected.txt"
  check "$stack -> our server: cancel mid-story, server logs it" check_cancel "$stack"
  check "$stack -> our server: health Check" check_health "$stack"
  check "$stack -> our server: reflection lists and describes, SayHello from it" check_reflect "$stack"
done

# ------------------------------------------------------------ stock servers

say "2. assistant-client against stock servers"

tutorial_story_port=$(free_port)
node_story_port=$(free_port)
go_story_port=$(free_port)
# The tutorial's pauses off, so a story takes milliseconds.
tutorial story server.py "$tutorial_story_port" TUTORIAL_THINK_TIME=0 TUTORIAL_CHUNK_DELAY=0
start_server tutorial_story "$tutorial_story_port" "${tutorial_command[@]}"
start_server node_story "$node_story_port" \
  node "$work/node/server.js" "$peers/tutorial/story/assistant.proto" "127.0.0.1:$node_story_port" stories/alice.txt
start_server go_story "$go_story_port" "$work/go-server" -addr "127.0.0.1:$go_story_port" stories/alice.txt

check_our_story() { # PORT
  ours "$1" --buffer-size 1024 --step-sec 0 >"$work/out" 2>"$work/client.err" || { cat "$work/client.err"; return 1; }
  same "$work/expected.txt" "$work/out"
  detail "$(wc -c <"$work/out") bytes, exit 0"
}
check_tutorial_log() {
  local log=$work/tutorial_story.log
  grep -qx "INFO:root:Server started on port $tutorial_story_port" "$log"
  grep -qx "INFO:root:Received story-telling request from Peter S, SUSTech." "$log"
  grep -qx "INFO:root:Start streaming alice.txt" "$log"
  grep -qx "INFO:root:Read 1024 bytes: \[Alice's A ..." "$log"
  grep -qx "INFO:root:\[EOF\]" "$log"
  grep -qx "INFO:root:Finishes streaming alice.txt for Peter S from SUSTech." "$log"
}
check "our client -> tutorial's Python story server (two-field .proto): story byte for byte" check_our_story "$tutorial_story_port"
check "tutorial's Python story server logged the tutorial's lines" check_tutorial_log
check "our client -> grpc-js story server (two-field .proto): story byte for byte" check_our_story "$node_story_port"
check "our client -> grpc-go story server (offsets, story_version): story byte for byte" check_our_story "$go_story_port"

# The call-shapes tutorial's four servers, each from its own folder; for
# each, its own client first, then ours, and the two outputs compared byte
# for byte.
declare -A shape_port
for dir in unary server_streaming client_streaming bidirectional; do
  shape_port[$dir]=$(free_port)
  tutorial "$dir" server.py "${shape_port[$dir]}"
  start_server "tutorial_$dir" "${shape_port[$dir]}" "${tutorial_command[@]}"
done
check_shape() { # DIR OUR_COMMAND...
  local dir=$1 port=${shape_port[$1]}
  shift
  tutorial_client "$dir" "$port" >"$work/tutorial.out"
  ours "$port" "$@" >"$work/ours.out"
  echo "tutorial's client:"; cat "$work/tutorial.out"
  echo "our client:"; cat "$work/ours.out"
  same "$peers/tutorial/$dir/expected.txt" "$work/tutorial.out" \
    || { echo "(the tutorial's own client does not print what the tutorial shows)"; return 1; }
  same "$work/tutorial.out" "$work/ours.out"
  detail "$(wc -l <"$work/ours.out") lines, identical"
}
check "our client -> tutorial's unary server: hello = tutorial's client" check_shape unary hello
check "our client -> tutorial's server-streaming server: chat-stream = tutorial's client" check_shape server_streaming chat-stream
check "our client -> tutorial's client-streaming server: collect --method ChatStream = tutorial's client" \
  check_shape client_streaming collect --method ChatStream
check "our client -> tutorial's bidirectional server: chat = tutorial's client" check_shape bidirectional chat
for dir in unary server_streaming client_streaming bidirectional; do stop_server "tutorial_$dir"; done

# ------------------------------------------------------------ tutorial clients

say "3. the tutorial's own clients against assistant-server"
check_tutorial_client() { # DIR
  tutorial_client "$1" "$fast_port" >"$work/out"
  same "$peers/tutorial/$1/expected.txt" "$work/out"
}
check "tutorial's unary client -> our server: as the tutorial shows" check_tutorial_client unary
check "tutorial's server-streaming client -> our server: as the tutorial shows" check_tutorial_client server_streaming
check "tutorial's bidirectional client -> our server: as the tutorial shows" check_tutorial_client bidirectional
echo "SKIP  tutorial's client-streaming client -> our server: it calls ChatStream as client streaming; ours is CollectStream (one service cannot hold both)"

# ------------------------------------------------------------ grpc-js

say "4. grpc-js and the CANCELLED ending"
slow_ms=10
compressed_port=$(free_port)
compressed_ok_port=$(free_port)
start_server compressed "$compressed_port" "$server_bin" --addr "127.0.0.1:$compressed_port" "${quick[@]}" --compress-responses
start_server compressed_ok "$compressed_ok_port" "$server_bin" --addr "127.0.0.1:$compressed_ok_port" "${quick[@]}" \
  --compress-responses --finish ok
# js_story PORT EXPECT_STATUS fast|slow [PROTO_DIR]: a grpc-js reader, fast
# or slow (paused $slow_ms ms after each message); sets got_messages.
js_story() {
  local command=story
  [ "$3" = slow ] && command="slow-story $slow_ms"
  # shellcheck disable=SC2086 # $command is two words on purpose
  EXPECT_STATUS=$2 timeout 60 node "$work/node/client.js" "${4:-$root/proto}" "127.0.0.1:$1" $command \
    >"$work/out" 2>"$work/js.err" || { cat "$work/js.err"; return 1; }
  cat "$work/js.err"
  got_messages=$(sed -n 's/.*messages=\([0-9]*\) .*/\1/p' "$work/js.err" | tail -n 1)
}
# The output is a strict prefix of the story: the tail was lost, nothing else.
lost_tail() {
  local got
  got=$(wc -c <"$work/out")
  [ "$got" -lt "$(wc -c <"$work/expected.txt")" ] || { echo "got every byte: no tail was lost"; return 1; }
  cmp -s -n "$got" "$work/expected.txt" "$work/out" || { echo "the bytes received differ from the story's"; return 1; }
  [ "$got_messages" -lt "$story_messages" ]
}
check_every_byte() { # PORT EXPECT_STATUS fast|slow [RUNS]
  local run runs=${4:-1}
  for run in $(seq "$runs"); do
    js_story "$1" "$2" "$3"
    same "$work/expected.txt" "$work/out" || { echo "run $run lost bytes"; return 1; }
  done
  if [ "$runs" -gt 1 ]; then
    detail "$runs of $runs runs got $got_messages/$story_messages messages, then $2"
  else
    detail "got $got_messages/$story_messages messages, then $2"
  fi
}
check_lost_tail() { # PORT fast|slow [PROTO_DIR]
  js_story "$1" CANCELLED "$2" "${3:-}"
  detail "got $got_messages/$story_messages messages, $(wc -c <"$work/out") of $(wc -c <"$work/expected.txt") bytes, then CANCELLED"
  lost_tail
}
check "4a grpc-js fast reader -> our server (--finish cancel, no compression): every byte" \
  check_every_byte "$fast_port" CANCELLED fast 5
check "4b grpc-js slow reader (${slow_ms} ms a message) -> our server --finish cancel: loses the tail" \
  check_lost_tail "$fast_port" slow
check "4b grpc-js slow reader (${slow_ms} ms a message) -> our server --finish ok: every byte" \
  check_every_byte "$ok_port" OK slow
check "4c grpc-js slow reader (${slow_ms} ms a message) -> tutorial's Python server: loses the tail too" \
  check_lost_tail "$tutorial_story_port" slow "$peers/tutorial/story"
# Compressed responses are decompressed asynchronously, so even a fast
# reader has messages pending when the status arrives: the reason
# --compress-responses is off by default.
check "4d grpc-js fast reader -> our server --compress-responses (--finish cancel): loses the tail" \
  check_lost_tail "$compressed_port" fast
check "4d grpc-js fast reader -> our server --compress-responses --finish ok: every byte" \
  check_every_byte "$compressed_ok_port" OK fast

# ------------------------------------------------------------ summary

say "checks took $((SECONDS - installed)) s (installs and builds $((installed - started)) s)"
echo "interop: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
  printf '  failed: %s\n' "${failures[@]}"
  exit 1
fi
