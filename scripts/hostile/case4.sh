# Case 4 of scripts/hostile.sh, sourced by it (see its header): call slots.

check_slots() {
  attack_ran c4
  local j=$work/c4.json
  cat "$j"
  detail "$(jget "$j" 'd["streams_opened"]') streams opened; ended by the server: $(jget "$j" 'd["streams_ended_by_server"]');" \
    "longest wait of an ended stream $(jget "$j" 'd["longest_lifetime_ended_s"]') s," \
    "of one still open $(jget "$j" 'd["longest_waiting_open_s"]') s (limit 5 s + 1 s); VmHWM $(mb "$hwm_kb") MB (limit 128 MB)"
  [ "$(jget "$j" 'int((d["longest_lifetime_ended_s"] or 0) <= 6.0)')" -eq 1 ]
  [ "$(jget "$j" 'int((d["longest_waiting_open_s"] or 0) <= 6.0)')" -eq 1 ]
  # 17,000 calls waiting for their request: about 98 MB; 155 MB when each
  # call's waiting futures took 4 KB.
  under_mb "$hwm_kb" 128 || { echo "peak RSS $(mb "$hwm_kb") MB is over 128 MB"; return 1; }
}

case4() {
  say "4. call slots (slowloris)"
  # Two connection threads wherever it runs: each holds memory of its own,
  # and the bound below was measured with two.
  start_server c4 "${quick[@]}" --threads 2
  attack c4 slowloris.py --port "$srv_port" --connections 17 --streams 1000 --hold 12
  check "4 slowloris (17 x 1,000 streams, 5 of 10 request bytes): no stream waits past --request-timeout 5 s + 1 s, peak RSS under 128 MB" \
    check_slots
  check "4 good client's calls succeed throughout" check_good
  finish "4"
}
