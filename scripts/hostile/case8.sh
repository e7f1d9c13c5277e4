# Case 8 of scripts/hostile.sh, sourced by it (see its header): memory after a burst.

check_burst() { # RSS_BEFORE RSS_AFTER
  attack_ran c8
  detail "VmRSS before $(mb "$1") MB, peak $(mb "$hwm_kb") MB (VmHWM; sampled $(mb "$(sampled_peak_kb)") MB)," \
    "3 s after the 10,000 streams closed $(mb "$2") MB"
}

case8() {
  say "8. memory after a burst"
  local before after t0
  start_server c8 "${quick[@]}"
  timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" --buffer-size 1024 --step-sec 0 >/dev/null 2>&1 || true
  before=$(status_kb "$srv_pid" VmRSS)
  attack c8 zero_window.py --port "$srv_port" --streams 10000 --connections 10 --hold 4
  # The figure is taken 3 s after the streams closed: a measure, not a wait.
  t0=$(now_ms)
  while [ $(($(now_ms) - t0)) -lt 3000 ]; do sleep 0.1; done
  after=$(status_kb "$srv_pid" VmRSS)
  check "8 10,000 stalled streams, held 4 s, closed: RSS figures" check_burst "$before" "$after"
  check "8 good client alongside: byte-exact, exit 0" check_good
  finish "8"
}
