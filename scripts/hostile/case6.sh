# Case 6 of scripts/hostile.sh, sourced by it (see its header): logging.

check_log_pipe() { # CALLS FAILED_BATCHES
  local probes slow bad
  probes=$(wc -l <"$work/c6a.probes")
  bad=$(awk '$2 != 0 || $3 != 1' "$work/c6a.probes" | wc -l)
  slow=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$work/c6a.probes")
  cat "$work/c6a.bench.failures" 2>/dev/null || true
  awk '($2 != 0 || $3 != 1) && ++n <= 5' "$work/c6a.probes"
  detail "$1 calls served (about $(($1 * 146)) log lines, $(($1 * 114 / 10000)) MB at 11.4 KB a call) by bench in batches" \
    "of 500, $2 batch failed; $probes probes, $bad failed, slowest $slow ms"
  [ "$2" -eq 0 ]
  [ "$bad" -eq 0 ]
  [ "$probes" -gt 0 ]
}

check_dropped_line() {
  local line
  line=$(grep -iE 'dropped' "$work/c6a.drained" | grep -E '[0-9]' | head -1 || true)
  echo "drained $(wc -c <"$work/c6a.drained") bytes; last lines:"
  tail -3 "$work/c6a.drained"
  [ -n "$line" ] || { echo "no line says how many log lines were dropped"; return 1; }
  line=${line#*Z }
  detail "${line# }"
}

check_reset_log() { # LOG_OFFSET
  attack_ran c6b
  local j=$work/c6b.json share=$work/c6b.share.json _ closes streams bytes
  # Each attacking connection logs one line when it closes.
  for _ in $(seq 60); do
    closes=$(tail -c +$(($1 + 1)) "$srv_log" | grep -c 'ended before their request arrived' || true)
    [ "$closes" -ge 4 ] && break
    sleep 0.05
  done
  "$python" "$attacks/log_share.py" "$srv_log" "$1" >"$share"
  cat "$j" "$share"
  streams=$(jget "$j" 'd["streams_sent"]')
  bytes=$(jget "$share" 'd["other_bytes"]')
  detail "$streams streams reset over 4 connections in $(jget "$j" 'd["seconds"]') s, goaways $(jget "$j" 'd["goaways"]');" \
    "the log grew $(jget "$share" 'd["total_bytes"]') bytes, $(jget "$share" 'd["good_bytes"]') of them the good client's;" \
    "the rest $bytes bytes in $(jget "$share" 'd["other_lines"]') lines:" \
    "$(awk -v b="$bytes" -v s="$streams" 'BEGIN { printf "%.2f", b / s }') bytes per attacker stream"
  [ "$streams" -ge 2000 ] || { echo "only $streams streams sent"; return 1; }
  [ "$bytes" -le $((streams * 10)) ] || { echo "over 10 bytes per attacker stream"; return 1; }
}

case6() {
  say "6. logging never stops serving"
  local holder_pid probe_pid drain_pid calls=0 bad_batches=0 batch rc offset t0

  # (a) stderr is a FIFO that a process holds open and never reads.
  mkfifo "$work/c6a.fifo"
  sleep 1000 <>"$work/c6a.fifo" &
  holder_pid=$!
  pids+=("$holder_pid")
  server_stderr=$work/c6a.fifo
  start_server c6a "${quick[@]}"
  server_stderr=""
  # Probes while the calls run: a story and a health check in turn, each
  # within 5 s; each line of $work/c6a.probes: KIND EXIT OK MS.
  : >"$work/c6a.probes"
  (
    while [ ! -e "$work/c6a.stop" ]; do
      t0=$(now_ms); rc=0
      timeout 5 "$client_bin" --server "127.0.0.1:$srv_port" --buffer-size 1024 --step-sec 0 \
        >"$work/c6a.probe.out" 2>/dev/null || rc=$?
      same=0; cmp -s "$work/expected.txt" "$work/c6a.probe.out" && same=1
      echo "story $rc $same $(($(now_ms) - t0))" >>"$work/c6a.probes"
      t0=$(now_ms); rc=0
      out=$(timeout 5 "$client_bin" --server "127.0.0.1:$srv_port" health 2>/dev/null) || rc=$?
      echo "health $rc $([ "$out" = SERVING ] && echo 1 || echo 0) $(($(now_ms) - t0))" >>"$work/c6a.probes"
      sleep 0.2
    done
  ) &
  probe_pid=$!
  pids+=("$probe_pid")
  for batch in 1 2 3 4 5 6; do
    rc=0
    timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" bench --calls 500 --concurrency 16 --connections 4 \
      --json "$work/c6a.bench.$batch.json" >"$work/c6a.bench.$batch.out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
      calls=$((calls + $(jget "$work/c6a.bench.$batch.json" 'd["calls_ok"]' 2>/dev/null || echo 0)))
    else
      # A server gone dark would make each further batch wait for its
      # timeout: one failed batch is enough.
      bad_batches=$((bad_batches + 1))
      { echo "bench batch $batch: exit $rc"; tail -3 "$work/c6a.bench.$batch.out"; } >>"$work/c6a.bench.failures"
      break
    fi
  done
  touch "$work/c6a.stop"
  wait "$probe_pid" 2>/dev/null || true
  check "6a stderr a pipe nobody reads: 3,000 story calls served, story and health probes answer within 5 s" \
    check_log_pipe "$calls" "$bad_batches"
  # Drain the pipe, have the server log a little more, stop it, and read
  # everything it wrote.
  timeout 20 cat "$work/c6a.fifo" >"$work/c6a.drained" &
  drain_pid=$!
  pids+=("$drain_pid")
  check "6a after the pipe drains: serves (story byte-exact, health SERVING)" check_serves_after
  # The server may say how many lines it dropped as soon as stderr takes
  # lines again, or at exit: 5 s for the first, then SIGTERM.
  t0=$(now_ms)
  while [ $(($(now_ms) - t0)) -lt 5000 ] && ! grep -qi dropped "$work/c6a.drained"; do sleep 0.1; done
  stop_server
  # With the server gone and the holder stopped, the drain reads to the end.
  kill "$holder_pid" 2>/dev/null || true
  wait "$holder_pid" 2>/dev/null || true
  wait "$drain_pid" 2>/dev/null || true
  check "6a the server reports how many log lines it dropped" check_dropped_line
  check "6a SIGTERM, exit 0 within 5 s" check_stopped

  # (b) Paced Rapid Reset.
  start_server c6b "${quick[@]}"
  offset=$(wc -c <"$srv_log")
  attack c6b rapid_reset.py --port "$srv_port" --connections 4 --rate 300 --seconds 10
  check "6b paced Rapid Reset (4 connections, 300 streams/s, 10 s): the log grows by a bounded amount" \
    check_reset_log "$offset"
  check "6b good client alongside: byte-exact, exit 0" check_good
  finish "6b"
}
