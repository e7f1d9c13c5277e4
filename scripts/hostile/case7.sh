# Case 7 of scripts/hostile.sh, sourced by it (see its header): story library.

big_bytes=60000000

check_read_once() { # RCHAR_BEFORE
  local j=$work/c7a.json read
  [ -s "$j" ] || { cat "$work/c7a.attack.err"; return 1; }
  cat "$j"
  read=$(($(rchar "$srv_pid") - $1))
  detail "40 callers: $(jget "$j" 'd["read_enough"]') read 1 MiB, bytes match: $(jget "$j" 'd["bytes_match"]');" \
    "VmHWM $(mb "$hwm_kb") MB (limit 300 MB); the server read $(awk -v r="$read" 'BEGIN { printf "%.1f", r / 1e6 }') MB" \
    "(the story is 60 MB)"
  [ "$(jget "$j" 'd["read_enough"]')" -eq 40 ]
  [ "$(jget "$j" 'int(d["bytes_match"])')" -eq 1 ]
  [ "$read" -le $((big_bytes * 3 / 2)) ] || { echo "the server read $read bytes: the story more than once"; return 1; }
  under_mb "$hwm_kb" 300 || { echo "peak RSS $(mb "$hwm_kb") MB is over 300 MB"; return 1; }
}

check_bounded_cache() {
  local j=$work/c7b.json rss
  [ -s "$j" ] || { cat "$work/c7b.attack.err"; return 1; }
  cat "$j"
  rss=$(status_kb "$srv_pid" VmRSS)
  detail "turns: $(jget "$j" '" ".join(t["code"] for t in d["turns"])'); VmRSS after $(mb "$rss") MB," \
    "VmHWM $(mb "$hwm_kb") MB (limit 300 MB, the five stories' total: not all of them kept)"
  [ "$(jget "$j" 'int(all(t["code"] == "READ_ENOUGH" for t in d["turns"]))')" -eq 1 ]
  under_mb "$rss" 300 || { echo "VmRSS after the five stories: $(mb "$rss") MB: as much as all five"; return 1; }
}

check_fifo_race() {
  local j=$work/c7c.json
  [ -s "$j" ] || { cat "$work/c7c.attack.err"; return 1; }
  cat "$j"
  detail "$(jget "$j" 'd["swaps"]') renames; calls by status $(jget "$j" 'd["calls"]');" \
    "server threads blocked opening a FIFO: $(jget "$j" 'd["threads_blocked_on_fifo"]') of $(jget "$j" 'd["server_threads"]')"
  [ "$(jget "$j" 'd["threads_blocked_on_fifo"]')" -eq 0 ]
}

check_not_found() { # CLIENT_EXIT
  local j=$work/c7d.json listed count
  [ -s "$j" ] || { cat "$work/c7d.err"; return 1; }
  cat "$j"
  head -c 600 "$work/c7d.client.err"; echo
  listed=$(jget "$j" 'd["names_listed"]')
  count=$((5001 - listed))
  detail "grpcio: $(jget "$j" 'd["code"]'), $(jget "$j" 'd["message_chars"]') characters, $listed names," \
    "ending '...$(jget "$j" 'd["message_end"][-40:]')';" \
    "assistant-client: exit $1, $(grep -oE 'NOT_FOUND|RESOURCE_EXHAUSTED|INTERNAL|UNKNOWN|UNAVAILABLE' "$work/c7d.client.err" | head -1)"
  [ "$(jget "$j" 'd["code"]')" = NOT_FOUND ] || { echo "grpcio saw $(jget "$j" 'd["code"]')"; return 1; }
  [ "$listed" -le 25 ] || { echo "$listed names listed"; return 1; }
  [ "$(jget "$j" 'd["message_chars"]')" -le 2000 ] || { echo "the message is too long"; return 1; }
  [ "$(jget "$j" "int($count in d['numbers'] or 5001 in d['numbers'])")" -eq 1 ] \
    || { echo "the message does not count the rest ($count)"; return 1; }
  { [ "$1" -eq 1 ] && grep -q NOT_FOUND "$work/c7d.client.err"; } \
    || { echo "assistant-client: exit $1, not NOT_FOUND"; return 1; }
}

check_list_cpu() {
  local j=$work/c7e.json
  [ -s "$j" ] || { cat "$work/c7e.err"; return 1; }
  cat "$j"
  detail "$(jget "$j" 'd["stories"]') stories; the first call $(jget "$j" 'd["first_cpu_ms"]') ms of server CPU" \
    "($(jget "$j" 'd["first_wall_ms"]') ms wall), the next 50 $(jget "$j" 'd["cpu_ms_per_call"]') ms each" \
    "($(jget "$j" 'd["wall_ms_per_call"]') ms wall; limit 5 ms)"
  [ "$(jget "$j" 'd["stories"]')" -eq 5001 ]
  [ "$(jget "$j" 'int(d["cpu_ms_per_call"] <= 5.0)')" -eq 1 ] || { echo "over 5 ms of server CPU per call"; return 1; }
}

case7() {
  say "7. story library"
  local lib=$work/lib fifo_lib=$work/fifo-lib many=$work/many before rc=0
  mkdir -p "$lib" "$fifo_lib" "$many"
  cp stories/alice.txt "$lib/"
  "$python" "$attacks/make_stories.py" big "$lib" "$big_bytes"

  # (a) one 60 MB story, 40 callers at once.
  start_server c7a "${quick[@]}" --stories-dir "$lib"
  before=$(rchar "$srv_pid")
  attack c7a grpc_calls.py fanout "$srv_port" big0.txt "$lib/big0.txt" 40 1048576
  check "7a a 60 MB story for 40 callers at once: read once, peak RSS under 300 MB" check_read_once "$before"
  check "7a good client alongside: byte-exact, exit 0" check_good
  finish "7a"

  # (b) five 60 MB stories in turn.
  start_server c7b "${quick[@]}" --stories-dir "$lib"
  attack c7b grpc_calls.py turns "$srv_port" 1048576 big0.txt big1.txt big2.txt big3.txt big4.txt
  check "7b five 60 MB stories in turn: memory held afterwards bounded (VmRSS under 300 MB)" check_bounded_cache
  check "7b good client alongside: byte-exact, exit 0" check_good
  finish "7b"

  # (c) a FIFO renamed over a story, again and again, while it is asked
  # for.
  cp stories/alice.txt "$fifo_lib/"
  echo "The victim" >"$fifo_lib/victim.txt"
  start_server c7c "${quick[@]}" --stories-dir "$fifo_lib"
  attack c7c grpc_calls.py fifo-race "$srv_port" "$fifo_lib" victim.txt 4 "$srv_pid"
  check "7c FIFO renamed over a story: no thread left blocked opening it" check_fifo_race
  check "7c good client alongside: byte-exact, exit 0" check_good
  finish "7c"

  # (d) and (e): 5,001 stories. ListStories first, on the fresh server,
  # without the good client: the server's CPU is measured, and the good
  # client's calls would add to it.
  cp stories/alice.txt "$many/"
  "$python" "$attacks/make_stories.py" many "$many" 5000
  start_server c7d "${quick[@]}" --stories-dir "$many"
  sampler_start
  "$python" "$attacks/grpc_calls.py" list-cpu "$srv_port" "$srv_pid" 50 >"$work/c7e.json" 2>"$work/c7e.err" || true
  check "7e ListStories over 5,001 stories: server CPU per call low after the first" check_list_cpu
  good_start
  "$python" "$attacks/grpc_calls.py" notfound "$srv_port" no-such-story.txt >"$work/c7d.json" 2>"$work/c7d.err" || true
  timeout 30 "$client_bin" --server "127.0.0.1:$srv_port" story --story no-such-story.txt --buffer-size 1024 --step-sec 0 \
    >/dev/null 2>"$work/c7d.client.err" || rc=$?
  check "7d NOT_FOUND among 5,001 stories: short message (<= ~20 names and a count), NOT_FOUND to grpcio and assistant-client" \
    check_not_found "$rc"
  good_stop
  sampler_stop
  check "7d good client alongside: byte-exact, exit 0" check_good
  finish "7d-e"
}
