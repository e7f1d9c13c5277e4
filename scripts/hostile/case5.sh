# Case 5 of scripts/hostile.sh, sourced by it (see its header): deadlines.

deadline_lines() { grep -c 'Call ended code=DEADLINE_EXCEEDED' "$srv_log" || true; }

check_short() {
  local j=$work/c5a.json full statuses
  [ -s "$j" ] || { cat "$work/c5a.err"; return 1; }
  echo "each call: grpc-status/ending/bytes/ms"
  jget "$j" '"; ".join("%s/%s/%s/%s" % (t["grpc_status"], t["how"], t["data_bytes"], t["delay_ms"]) for t in d["trials"])'
  full=$(jget "$j" 'd["baseline"]["data_bytes"]')
  statuses=$(jget "$j" '" ".join(sorted(set(str(t["grpc_status"]) + "/" + str(t["how"]) for t in d["trials"])))')
  detail "baseline $full bytes ending $(jget "$j" 'd["baseline"]["grpc_status"]'); 20 calls with 1m:" \
    "status/ending $statuses, bytes $(jget "$j" 'min(t["data_bytes"] for t in d["trials"])')..$(jget "$j" 'max(t["data_bytes"] for t in d["trials"])')"
  [ "$(jget "$j" 'int(all(t["grpc_status"] == 4 for t in d["trials"]))')" -eq 1 ] \
    || { echo "not every call ended DEADLINE_EXCEEDED (4)"; return 1; }
  [ "$(jget "$j" "int(all(t['data_bytes'] < $full for t in d['trials']))")" -eq 1 ] \
    || { echo "a call got the whole story ($full bytes)"; return 1; }
}

# Each call ended by RST_STREAM, or by trailers saying DEADLINE_EXCEEDED.
ended_as_deadline() { # JSON
  [ "$(jget "$1" 'int(all(t["how"] == "rst" or t["grpc_status"] == 4 for t in d["trials"]))')" -eq 1 ] \
    || { echo "a call ended by trailers other than DEADLINE_EXCEEDED"; return 1; }
}

check_stalled() { # DEADLINE_LINES_BEFORE
  local j=$work/c5b.json _ logged=0
  [ -s "$j" ] || { cat "$work/c5b.err"; return 1; }
  cat "$j"
  for _ in $(seq 40); do
    logged=$(($(deadline_lines) - $1))
    [ "$logged" -ge 5 ] && break
    sleep 0.05
  done
  detail "ended after $(jget "$j" '", ".join(str(t["delay_ms"]) for t in d["trials"])') ms" \
    "by $(jget "$j" '" ".join(sorted(set(str(t["how"]) + "/" + str(t["grpc_status"]) for t in d["trials"])))');" \
    "server logged $logged of 5 'Call ended code=DEADLINE_EXCEEDED'"
  [ "$(jget "$j" 'int(all(t["delay_ms"] is not None and 995 <= t["delay_ms"] <= 1100 for t in d["trials"]))')" -eq 1 ] \
    || { echo "a call did not end between 995 and 1100 ms"; return 1; }
  ended_as_deadline "$j"
  [ "$logged" -ge 5 ] || { echo "the server logged $logged of 5 DEADLINE_EXCEEDED endings"; return 1; }
}

check_slow() {
  local j=$work/c5c.json
  [ -s "$j" ] || { cat "$work/c5c.err"; return 1; }
  cat "$j"
  detail "ended after $(jget "$j" '", ".join(str(t["delay_ms"]) for t in d["trials"])') ms" \
    "by $(jget "$j" '" ".join(sorted(set(str(t["how"]) + "/" + str(t["grpc_status"]) for t in d["trials"])))')," \
    "having read $(jget "$j" 'min(t["data_bytes"] for t in d["trials"])')..$(jget "$j" 'max(t["data_bytes"] for t in d["trials"])') bytes"
  [ "$(jget "$j" 'int(all(t["delay_ms"] is not None and 995 <= t["delay_ms"] <= 1100 for t in d["trials"]))')" -eq 1 ] \
    || { echo "a call did not end between 995 and 1100 ms"; return 1; }
  ended_as_deadline "$j"
}

case5() {
  say "5. deadlines"
  local before
  # One byte per message: a story that is always ready and takes far
  # longer than 1 ms to send (in 1 KiB messages, the whole story goes in
  # under a millisecond, before any deadline of 1m could pass).
  start_server c5 "${quick[@]}" --chunk-size 1
  sampler_start
  good_start
  "$python" "$attacks/deadlines.py" --port "$srv_port" --mode short --trials 20 >"$work/c5a.json" 2>"$work/c5a.err" || true
  check "5a grpc-timeout 1m, an always-ready story: DEADLINE_EXCEEDED, not the whole story" check_short
  before=$(deadline_lines)
  "$python" "$attacks/deadlines.py" --port "$srv_port" --mode stalled --trials 5 >"$work/c5b.json" 2>"$work/c5b.err" || true
  check "5b stalled on window 0, grpc-timeout 1S: ended within 100 ms of the deadline, logged DEADLINE_EXCEEDED" \
    check_stalled "$before"
  "$python" "$attacks/deadlines.py" --port "$srv_port" --mode slow --trials 5 >"$work/c5c.json" 2>"$work/c5c.err" || true
  check "5c slow reader, grpc-timeout 1S: ended within 100 ms of the deadline" check_slow
  good_stop
  hwm_kb=$(status_kb "$srv_pid" VmHWM)
  sampler_stop
  check "5 good client alongside: byte-exact, exit 0" check_good
  finish "5"
}
