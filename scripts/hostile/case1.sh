# Case 1 of scripts/hostile.sh, sourced by it (see its header): never-reading clients.

# 1b: the server at --max-calls 100 (it logs so) with never-reading
# streams; then five grpcio calls and one assistant-client call, each on a
# connection of its own, get their stories: each makes room by ending a
# stalled call of the busiest connection (RESOURCE_EXHAUSTED, logged).
check_made_room() {
  attack_ready c1b 60 || { echo "the attack was never in place"; return 1; }
  local t0 _ rc=0 codes before after
  t0=$(now_ms)
  for _ in $(seq 100); do
    grep -q "At the limit of 100 calls" "$srv_log" && break
    sleep 0.05
  done
  grep -q "At the limit of 100 calls" "$srv_log" \
    || { echo "the server never logged 'At the limit of 100 calls'"; return 1; }
  before=$(grep -c 'Call ended code=RESOURCE_EXHAUSTED' "$srv_log" || true)
  "$python" "$attacks/grpc_calls.py" statuses "$srv_port" 5 >"$work/c1b.calls.json"
  timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" --buffer-size 1024 --step-sec 0 \
    >"$work/c1b.client.out" 2>"$work/c1b.client.err" || rc=$?
  # The log is written by a thread of its own: give the last line a moment.
  for _ in $(seq 40); do
    after=$(grep -c 'Call ended code=RESOURCE_EXHAUSTED' "$srv_log" || true)
    [ $((after - before)) -ge 6 ] && break
    sleep 0.05
  done
  cat "$work/c1b.calls.json" "$work/c1b.client.err"
  codes=$(jget "$work/c1b.calls.json" '" ".join(sorted(set(d["codes"])))')
  detail "at the limit after $(($(now_ms) - t0)) ms; grpcio x5: $codes; assistant-client: exit $rc;" \
    "stalled calls ended to make room: $((after - before))"
  [ "$codes" = "CANCELLED: story finished" ] || { echo "a grpcio call did not get its story"; return 1; }
  { [ "$rc" -eq 0 ] && cmp -s "$work/expected.txt" "$work/c1b.client.out"; } \
    || { echo "assistant-client: exit $rc, or not the story byte for byte"; return 1; }
  [ $((after - before)) -ge 6 ] || { echo "fewer than 6 stalled calls were ended"; return 1; }
}

case1() {
  say "1. never-reading clients"
  start_server c1a "${quick[@]}"
  attack c1a never_read.py --port "$srv_port" --connections 20 --streams 1000 --hold 8
  check "1a never-reading (20 connections x 1,000 streams, windows 2^31-1): peak RSS under 512 MB, default flags" \
    check_peak c1a 512
  check "1a good client alongside: byte-exact, exit 0" check_good
  finish "1a"

  # With --max-calls 100, streams that are never read hold their calls.
  # They go out in waves, so that calls whose bytes fit in the sockets'
  # buffers (and so left) are replaced, until the server is full. The good
  # calls run after, each on a connection of its own.
  start_server c1b "${quick[@]}" --max-calls 100
  sampler_start
  attack_start c1b never_read.py --port "$srv_port" --connections 10 --streams 300 --waves 10 --wave-pause 0.2 --hold 6
  check "1b never-reading streams fill --max-calls 100: good calls make room, ending stalled ones RESOURCE_EXHAUSTED" \
    check_made_room
  attack_wait
  sampler_stop
  finish "1b"
}
