# Case 1 of scripts/hostile.sh, sourced by it (see its header): never-reading clients.

# 1b: the server at --max-calls 100 (it logs so), full of never-reading
# streams. Then five grpcio calls and one assistant-client call, one
# after another and each on a connection of its own, get their stories:
# each finds the server full and makes room by ending a stalled call of
# the busiest connection (RESOURCE_EXHAUSTED, logged). Before each, the
# attack fills the place the last one left, and the server settles.

# Before each good call the server holds exactly 100 calls (--max-calls)
# while the attack fills it, and 99 after the last (settled_at, lib.sh):
# making room never leaves it over (a call whose place was taken as its
# request came in, or as its client read on, must end all the same).

# A good call: grpcio (one call) for 1 to 5, assistant-client for 6.
# Sets rc and codes.
good_call() {
  if [ "$1" -le 5 ]; then
    "$python" "$attacks/grpc_calls.py" statuses "$srv_port" 1 >"$work/c1b.calls.json"
    codes+="$(jget "$work/c1b.calls.json" '" ".join(d["codes"])'); "
  else
    timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" --buffer-size 1024 --step-sec 0 \
      >"$work/c1b.client.out" 2>"$work/c1b.client.err" || rc=$?
  fi
}

check_made_room() {
  attack_ready c1b 60 || { echo "the attack was never in place"; return 1; }
  local _ n rc=0 codes="" settled="" ended="" before after first=0
  for _ in $(seq 100); do
    grep -q "At the limit of 100 calls" "$srv_log" && break
    sleep 0.05
  done
  grep -q "At the limit of 100 calls" "$srv_log" \
    || { echo "the server never logged 'At the limit of 100 calls'"; return 1; }
  for n in 1 2 3 4 5 6; do
    if [ "$n" -gt 1 ]; then
      # The last good call's place: the attack fills it again.
      echo $((n - 1)) >"$work/c1b.top-up.new"
      mv "$work/c1b.top-up.new" "$work/c1b.top-up"
    fi
    settled_at c1b 100 || { detail "calls in flight, settled, before each good call:$settled"; return 1; }
    before=$(grep -c 'Call ended code=RESOURCE_EXHAUSTED' "$srv_log" || true)
    [ "$n" -gt 1 ] || first=$before
    good_call "$n"
    # The log is written by a thread of its own: give the line a moment.
    for _ in $(seq 40); do
      after=$(grep -c 'Call ended code=RESOURCE_EXHAUSTED' "$srv_log" || true)
      [ "$after" -gt "$before" ] && break
      sleep 0.05
    done
    ended+=" $((after - before))"
  done
  # The last good call's place stays free; and no call was ended but the
  # six that made room (one late would have passed for the next call's).
  settled_at c1b 99 || { detail "calls in flight, settled, before each good call and after:$settled"; return 1; }
  after=$(grep -c 'Call ended code=RESOURCE_EXHAUSTED' "$srv_log" || true)
  ended+=" (all: $((after - first)))"
  detail "calls in flight, settled, before each good call and after:$settled;" \
    "stalled calls each ended:$ended;" \
    "grpcio x5: $(printf '%s' "$codes" | tr ';' '\n' | sed 's/^ //' | grep . | sort -u | paste -sd, -);" \
    "assistant-client: exit $rc"
  cat "$work/c1b.client.err"
  [ "$codes" = "$(printf 'CANCELLED: story finished; %.0s' 1 2 3 4 5)" ] \
    || { echo "a grpcio call did not get its story"; return 1; }
  { [ "$rc" -eq 0 ] && cmp -s "$work/expected.txt" "$work/c1b.client.out"; } \
    || { echo "assistant-client: exit $rc, or not the story byte for byte"; return 1; }
  [ "$ended" = " 1 1 1 1 1 1 (all: 6)" ] || { echo "not every good call ended one stalled call"; return 1; }
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
  metrics_port=$(free_port)
  start_server c1b "${quick[@]}" --max-calls 100 --metrics-addr "127.0.0.1:$metrics_port"
  sampler_start
  attack_start c1b never_read.py --port "$srv_port" --connections 10 --streams 300 --waves 10 --wave-pause 0.2 \
    --hold 60 --release "$work/c1b.release" --top-up "$work/c1b.top-up"
  check "1b never-reading streams fill --max-calls 100, and hold it exactly: good calls make room, each ending a stalled one RESOURCE_EXHAUSTED" \
    check_made_room
  touch "$work/c1b.release"
  attack_wait
  sampler_stop
  finish "1b"
}
