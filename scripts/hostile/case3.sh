# Case 3 of scripts/hostile.sh, sourced by it (see its header): connections and descriptors.

# Lines about abusive connections closed or refused: at most 10 in each
# 10 s window since the server started.
check_abuse_log() { # MS_SINCE_START CLOSED_BY_SERVER
  local lines windows
  lines=$(grep -cE 'Closed the connection from|Refused a connection' "$srv_log" || true)
  # The windows the run touched, with half a second to spare.
  windows=$((($1 + 500 + 9999) / 10000))
  echo "log lines about abusive connections:"
  grep -E 'Closed the connection from|Refused a connection' "$srv_log" | head -30 || true
  detail "$lines lines for $2 connections closed by the server in $(($1 / 1000)) s (at most $((windows * 10)))"
  [ "$lines" -ge 1 ] || { echo "no line at all about the abusive connections"; return 1; }
  [ "$lines" -le $((windows * 10)) ]
}

check_closed_in_time() {
  attack_ran c3a
  local j=$work/c3a.json
  cat "$j"
  detail "$(jget "$j" 'd["opened"]') opened, $(jget "$j" 'd["closed_by_server"]') closed by the server;" \
    "open for median $(jget "$j" 'd["median_open_s"]') s, p99 $(jget "$j" 'd["p99_open_s"]') s," \
    "max $(jget "$j" 'd["max_open_s"]') s (limit 2 s + 1 s); VmHWM $(mb "$hwm_kb") MB"
  [ "$(jget "$j" 'd["opened"]')" -eq 2000 ]
  [ "$(jget "$j" 'd["closed_by_server"]')" -eq 2000 ]
  [ "$(jget "$j" 'int(d["max_open_s"] <= 3.0)')" -eq 1 ]
}

check_cap() {
  local limits cap j=$work/c3b.json
  limits=$(grep -m1 'Limits:' "$srv_log" || true)
  echo "$limits"
  cap=$(sed -n 's/.*Limits: \([0-9]*\) connections.*/\1/p' <<<"$limits")
  attack_ran c3b
  cat "$j"
  detail "server: '${limits#*Limits: }'; attack: $(jget "$j" 'd["opened"]') opened," \
    "$(jget "$j" 'd["closed_by_server"]') closed by the server, $(jget "$j" 'd["open_failures"]') failed to open;" \
    "VmHWM $(mb "$hwm_kb") MB"
  [ -n "$cap" ] || { echo "no 'Limits: N connections' line"; return 1; }
  [ "$cap" -lt 512 ]
  [ "$(jget "$j" 'd["closed_by_server"]')" -gt 0 ] || { echo "the server closed none of the half-open connections"; return 1; }
}

check_held_back() {
  local line
  line=$(grep -m1 'more like it held back' "$srv_log" || true)
  echo "$line"
  [ -n "$line" ] || { echo "no line says how many were held back"; return 1; }
  line=${line#*Z }
  detail "${line# }"
}

case3() {
  say "3. connections and descriptors"
  local t0
  start_server c3a "${quick[@]}" --handshake-timeout 2 --keepalive-interval 5 --keepalive-timeout 5
  t0=$(now_ms)
  attack c3a half_open.py --port "$srv_port" --mode close-times --connections 2000 --wait 8
  check "3a 2,000 connections (1 byte or half the preface): all closed within --handshake-timeout 2 + 1 s, keepalive 5/5" \
    check_closed_in_time
  check "3a good client alongside: byte-exact, exit 0" check_good
  check "3a log: abusive connections' lines rate-limited (10 per 10 s)" \
    check_abuse_log $(($(now_ms) - t0)) "$(jget "$work/c3a.json" 'd["closed_by_server"]' 2>/dev/null || echo '?')"
  finish "3a"

  # The server raises its soft limit to the hard one: 512 here.
  server_wrap=(prlimit --nofile=512:512 --)
  start_server c3b "${quick[@]}"
  server_wrap=()
  t0=$(now_ms)
  attack c3b half_open.py --port "$srv_port" --mode hold --connections 600 --hold 12 --reopen-rate 100
  check "3b prlimit --nofile=512:512: connections capped below the descriptor limit, half-open ones evicted" check_cap
  check "3b good client alongside 600 half-open connections: byte-exact, exit 0" check_good
  check "3b log: abusive connections' lines rate-limited (10 per 10 s)" \
    check_abuse_log $(($(now_ms) - t0)) "$(jget "$work/c3b.json" 'd["closed_by_server"]' 2>/dev/null || echo '?')"
  check "3b log: the lines held back are counted" check_held_back
  finish "3b"
}
