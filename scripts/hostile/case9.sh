# Case 9 of scripts/hostile.sh, sourced by it (see its header): framings.

# Every call told whole, with its own greeting, and with the story's ending.
check_greetings() { # KEY CALLERS
  attack_ran "$1"
  local j=$work/$1.json
  detail "attack: $(cat "$j")"
  [ "$(jget "$j" 'd["codes"]')" = "['CANCELLED: story finished']" ]
  [ "$(jget "$j" 'd["bytes_match"]')" -eq "$2" ]
  [ "$(jget "$j" 'd["offsets_match"]')" -eq "$2" ]
}

case9() {
  say "9. framings: a greeting of a different length for every caller"
  # Paced, so that the calls overlap and each holds its framing.
  start_server c9 --think-time 0 --chunk-delay 0.01 --shutdown-grace 2
  attack c9 grpc_calls.py greetings "$srv_port" stories/alice.txt 250
  check "9 250 callers with greetings of 250 lengths, at once: peak RSS under 30 MB" check_peak c9 30
  check "9 every call byte-exact, offsets right, ended as the tutorial's" check_greetings c9 250
  check "9 good client alongside: byte-exact, exit 0" check_good
  finish "9"
}
