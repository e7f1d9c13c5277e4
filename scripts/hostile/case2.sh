# Case 2 of scripts/hostile.sh, sourced by it (see its header): zero-window streams.

case2() {
  say "2. zero-window streams"
  start_server c2 "${quick[@]}"
  attack c2 zero_window.py --port "$srv_port" --streams 10000 --connections 10 --hold 6
  check "2 zero-window (10,000 streams, window 0): peak RSS under 150 MB" check_peak c2 150
  check "2 every stream held as a call (answered with headers, none ended)" check_held c2 10000
  check "2 good client alongside: byte-exact, exit 0" check_good
  finish "2"

  # 2b: chats that wait to send and never read, at --max-calls 100.
  metrics_port=$(free_port)
  start_server c2b "${quick[@]}" --max-calls 100 --metrics-addr "127.0.0.1:$metrics_port"
  attack_start c2b zero_window.py --chat --port "$srv_port" --streams 3000 --connections 10 \
    --waves 10 --wave-pause 0.2 --hold 120 --release "$work/c2b.release"
  check "2b zero-window Chat streams (10 x 300, in waves) at --max-calls 100: held at exactly 100; a good call makes room by ending one" \
    check_chat_flood
  touch "$work/c2b.release"
  attack_wait
  check "2b the attack's chats ended by the server as newer ones took their places" check_chats_ended
  finish "2b"
}

# 2b: headers-only Chat streams on connections that give them no window,
# in waves. Chat answers before it reads, so each waits to send and never
# reads its request. A newcomer at the full server takes the place of one
# (the oldest waiting for its request, if it may be ended, else one
# stalled), and that one must end, though it never reads: else each would
# add one to the count; nor may a chat on both lists be ended twice. The server
# holds exactly 100 calls; then three grpcio calls, one after another and
# each on a connection of its own, get their stories: the first by ending
# one chat, the others in the place it left. 99 chats are left.
check_chat_flood() {
  attack_ready c2b 60 || { echo "the attack was never in place"; return 1; }
  local _ codes="" settled=""
  settled_at c2b 100 || { detail "calls in flight, settled:$settled"; return 1; }
  for _ in 1 2 3; do
    "$python" "$attacks/grpc_calls.py" statuses "$srv_port" 1 >"$work/c2b.calls.json"
    codes+="$(jget "$work/c2b.calls.json" '" ".join(d["codes"])'); "
  done
  settled_at c2b 99 || { detail "calls in flight, settled, before the good calls and after:$settled"; return 1; }
  detail "calls in flight, settled, before the good calls and after:$settled;" \
    "grpcio x3: $(printf '%s' "$codes" | tr ';' '\n' | sed 's/^ //' | grep . | sort -u | paste -sd, -)"
  [ "$codes" = "$(printf 'CANCELLED: story finished; %.0s' 1 2 3)" ] \
    || { echo "a grpcio call did not get its story"; return 1; }
}

# The chats the server ended (refused at once, or ended to make room) and
# those it held: 99 held when the attack let go, every other one ended.
check_chats_ended() {
  attack_ran c2b
  local j=$work/c2b.json ended
  ended=$(jget "$j" 'sum(d["streams_ended_by_server"].values())')
  detail "$ended of $(jget "$j" 'd["streams_sent"]') chats ended by the server: $(jget "$j" 'd["streams_ended_by_server"]')"
  [ "$ended" -eq $(( $(jget "$j" 'd["streams_sent"]') - 99 )) ]
}

# Every stream of the attack answered with response headers, and none
# ended by the server: all held as calls.
check_held() { # KEY STREAMS
  attack_ran "$1"
  local j=$work/$1.json
  detail "$(jget "$j" 'd["header_blocks_received"]') response header blocks for $(jget "$j" 'd["streams_sent"]') streams;" \
    "ended by the server: $(jget "$j" 'd["streams_ended_by_server"]')"
  [ "$(jget "$j" 'd["header_blocks_received"]')" -eq "$2" ]
  [ "$(jget "$j" 'len(d["streams_ended_by_server"])')" -eq 0 ]
}
