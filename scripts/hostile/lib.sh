# Shared by scripts/hostile.sh and its cases (scripts/hostile/case*.sh):
# servers, the RSS sampler, the good client alongside, attacks, and checks.
# Sourced, not run: it uses the variables hostile.sh sets (work, python,
# server_bin, client_bin, attacks, pids).

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Memory figures are in MB of 10^6 bytes; /proc gives kB of 1024 bytes.
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }'; }
under_mb() { [ $(($1 * 1024)) -lt $(($2 * 1000000)) ]; } # KB LIMIT_MB
# jget FILE EXPR: EXPR of the JSON object in FILE, called d.
jget() { "$python" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
rchar() { awk '$1 == "rchar:" { print $2 }' "/proc/$1/io"; }

# start_server NAME FLAGS...: a fresh server on a free port, stderr to
# $work/NAME.log (or to $server_stderr if set), prefixed by the command in
# the array server_wrap if set. Waits (10 s at most) for "Server started
# on port", or, when stderr is not a file of ours, for health to answer.
# Sets srv_name, srv_port, srv_pid, srv_log.
server_wrap=()
server_stderr=""
start_server() {
  srv_name=$1
  shift
  srv_port=$(free_port)
  srv_log=$work/$srv_name.log
  local stderr=${server_stderr:-$srv_log}
  "${server_wrap[@]}" "$server_bin" --addr "127.0.0.1:$srv_port" "$@" >"$work/$srv_name.stdout" 2>"$stderr" &
  srv_pid=$!
  pids+=("$srv_pid")
  local t0
  t0=$(now_ms)
  while [ $(($(now_ms) - t0)) -lt 10000 ]; do
    kill -0 "$srv_pid" 2>/dev/null || { cat "$srv_log" >&2 || true; die "server $srv_name exited at start"; }
    if [ -z "$server_stderr" ]; then
      grep -q "Server started on port $srv_port" "$srv_log" && return 0
    else
      timeout 2 "$client_bin" --server "127.0.0.1:$srv_port" health >/dev/null 2>&1 && return 0
    fi
    sleep 0.05
  done
  die "server $srv_name did not start within 10 s"
}

# stop_server: SIGTERM, then waits at most 5 s (SIGKILL after that). Sets
# stop_rc and stop_ms.
stop_server() {
  local t0 watchdog
  t0=$(now_ms)
  kill -TERM "$srv_pid" 2>/dev/null || true
  (sleep 5; kill -KILL "$srv_pid" 2>/dev/null) &
  watchdog=$!
  disown "$watchdog" # its end is no news
  pids+=("$watchdog")
  stop_rc=0
  wait "$srv_pid" || stop_rc=$?
  stop_ms=$(($(now_ms) - t0))
  kill_tree "$watchdog"
}

sampler_start() {
  : >"$work/$srv_name.rss"
  "$python" "$attacks/rss.py" "$srv_pid" "$work/$srv_name.rss" &
  sampler_pid=$!
  pids+=("$sampler_pid")
}
sampler_stop() {
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
}
# The largest VmRSS sampled, in kB.
sampled_peak_kb() { awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$work/$srv_name.rss"; }

# The well-behaved client: stories, one after another, until told to stop
# (at least one). Each line of $work/good.results: N EXIT SAME MS.
good_start() {
  rm -f "$work/good.stop" "$work"/good.*.out "$work"/good.*.err
  : >"$work/good.results"
  (
    i=0
    while :; do
      i=$((i + 1))
      t0=$(now_ms)
      rc=0
      timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" --buffer-size 1024 --step-sec 0 \
        >"$work/good.out" 2>"$work/good.err" || rc=$?
      same=0
      cmp -s "$work/expected.txt" "$work/good.out" && same=1
      if [ "$rc" -ne 0 ] || [ "$same" -ne 1 ]; then
        cp "$work/good.out" "$work/good.$i.out"
        cp "$work/good.err" "$work/good.$i.err"
      fi
      echo "$i $rc $same $(($(now_ms) - t0))" >>"$work/good.results"
      [ -e "$work/good.stop" ] && break
    done
  ) &
  good_pid=$!
  pids+=("$good_pid")
}
good_stop() {
  touch "$work/good.stop"
  wait "$good_pid" 2>/dev/null || true
}
# Sets good_calls, good_bad and good_max_ms; fails if a call went wrong.
good_tally() {
  good_calls=$(wc -l <"$work/good.results")
  good_bad=$(awk '$2 != 0 || $3 != 1' "$work/good.results" | wc -l)
  good_max_ms=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$work/good.results")
}

# attack_start KEY PROGRAM ARGS...: runs scripts/hostile/PROGRAM in the
# background (bounded by timeout), its JSON summary to $work/KEY.json, with
# --ready $work/KEY.ready.
attack_start() {
  local key=$1 program=$2
  shift 2
  rm -f "$work/$key.ready"
  timeout 180 "$python" "$attacks/$program" --ready "$work/$key.ready" "$@" \
    >"$work/$key.json" 2>"$work/$key.attack.err" &
  attack_pid=$!
  pids+=("$attack_pid")
}
# attack_ready KEY SECONDS: waits for the attack's ready file.
attack_ready() {
  local _
  for _ in $(seq $(($2 * 20))); do
    [ -e "$work/$1.ready" ] && return 0
    kill -0 "$attack_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
attack_wait() {
  attack_rc=0
  wait "$attack_pid" || attack_rc=$?
}

# settled_at KEY N: once every call in flight is stalled (the attack's
# calls have all found their place), the server holds exactly N calls.
# Reads the metrics on $metrics_port (settled_calls.py); adds the count to
# $settled.
settled_at() {
  "$python" "$attacks/settled_calls.py" "$metrics_port" --expect "$2" >"$work/$1.settled.json"
  cat "$work/$1.settled.json"
  local in_flight
  in_flight=$(jget "$work/$1.settled.json" \
    'd["in_flight"] if d["settled"] else "unsettled (%d in flight, %d stalled)" % (d["in_flight"], d["stalled"])')
  settled+=" $in_flight"
  [ "$in_flight" = "$2" ] || { echo "calls in flight: $in_flight, not $2"; return 1; }
}

# attack KEY PROGRAM ARGS...: the usual shape of a case: sampler, attack,
# the good client from the moment the attack is in place until it ends.
# Records the server's VmHWM at the end in hwm_kb.
attack() {
  local key=$1
  sampler_start
  attack_start "$@"
  if attack_ready "$key" 90; then
    good_start
    attack_wait
    good_stop
  else
    attack_wait
    : >"$work/good.results"
  fi
  hwm_kb=$(status_kb "$srv_pid" VmHWM)
  sampler_stop
}

# shellcheck source=scripts/lib/checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"

attack_ran() { # KEY: the attack exited 0 and reported
  [ "$attack_rc" -eq 0 ] || { echo "the attack exited $attack_rc"; tail -5 "$work/$1.attack.err"; return 1; }
  [ -s "$work/$1.json" ] || { echo "the attack reported nothing"; return 1; }
}

# The bound on peak RSS (VmHWM), in MB.
check_peak() { # KEY LIMIT_MB
  attack_ran "$1"
  local peak full
  peak=$(sampled_peak_kb)
  full=$(grep -m1 -o 'At the limit of [0-9]* calls' "$srv_log" || true)
  detail "VmHWM $(mb "$hwm_kb") MB, sampled VmRSS peak $(mb "$peak") MB, limit $2 MB;" \
    "attack: $(cat "$work/$1.json")${full:+; server logged: $full}"
  under_mb "$hwm_kb" "$2" || { echo "peak RSS $(mb "$hwm_kb") MB is over $2 MB"; return 1; }
}

check_good() {
  good_tally
  detail "$good_calls stories during the attack, $good_bad wrong, slowest $good_max_ms ms"
  [ "$good_calls" -gt 0 ] || { echo "no good call ran during the attack (it was never in place)"; return 1; }
  if [ "$good_bad" -gt 0 ]; then
    awk '($2 != 0 || $3 != 1) && ++n <= 5 { print "call " $1 ": exit " $2 ", byte-exact " $3 ", " $4 " ms" }' \
      "$work/good.results"
    echo "errors: $(cat "$work"/good.*.err | grep -o 'An error occurred: [A-Z_]*' | sort | uniq -c | tr -s ' \n' ' ')"
    local first
    first=$(awk '$2 != 0 || $3 != 1 { print $1; exit }' "$work/good.results")
    echo "call $first stderr:"
    sed -n 1,5p "$work/good.$first.err"
    echo "call $first stdout: $(wc -c <"$work/good.$first.out") bytes of $(wc -c <"$work/expected.txt")"
    return 1
  fi
}

# After the attack: a story byte for byte, and health SERVING (polled for
# at most 5 s, since the server may take a moment to see the calls end).
check_serves_after() {
  local rc=0 t0 health=""
  timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" --buffer-size 1024 --step-sec 0 \
    >"$work/after.out" 2>"$work/after.err" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$work/after.err"; echo "story after the attack: exit $rc"; return 1; }
  cmp -s "$work/expected.txt" "$work/after.out" \
    || { echo "story after the attack: $(wc -c <"$work/after.out") bytes, not byte-exact"; return 1; }
  t0=$(now_ms)
  while :; do
    health=$(timeout 5 "$client_bin" --server "127.0.0.1:$srv_port" health 2>&1 || true)
    [ "$health" = SERVING ] && break
    [ $(($(now_ms) - t0)) -lt 5000 ] || { echo "health after the attack: $health"; return 1; }
    sleep 0.1
  done
  detail "story byte-exact; health SERVING after $(($(now_ms) - t0)) ms"
}

check_stopped() {
  detail "exit $stop_rc after $stop_ms ms"
  [ "$stop_rc" -eq 0 ] || { echo "exit code $stop_rc (137: killed after 5 s)"; tail -5 "$srv_log"; return 1; }
  [ "$stop_ms" -le 5000 ]
}

# The end of every case: serves after the attack, then SIGTERM.
finish() { # LABEL
  check "$1: serves after the attack (story byte-exact, health SERVING)" check_serves_after
  stop_server
  check "$1: SIGTERM, exit 0 within 5 s" check_stopped
}

quick=(--think-time 0 --chunk-delay 0 --shutdown-grace 2)
