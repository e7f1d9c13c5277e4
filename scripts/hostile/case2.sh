# Case 2 of scripts/hostile.sh, sourced by it (see its header): zero-window streams.

case2() {
  say "2. zero-window streams"
  start_server c2 "${quick[@]}"
  attack c2 zero_window.py --port "$srv_port" --streams 10000 --connections 10 --hold 6
  check "2 zero-window (10,000 streams, window 0): peak RSS under 150 MB" check_peak c2 150
  check "2 every stream held as a call (answered with headers, none ended)" check_held c2 10000
  check "2 good client alongside: byte-exact, exit 0" check_good
  finish "2"
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
