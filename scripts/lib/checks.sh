# The PASS/FAIL harness that scripts/interop.sh and scripts/hostile.sh
# share; sourced, with $work set to the script's temporary directory.

passed=0
failed=0
failures=()
# check NAME COMMAND...: runs the command in a subshell with errexit, its
# output in $work/check.log; a command may write a detail for the PASS or
# FAIL line with `detail`.
check() {
  local name=$1 rc
  shift
  : >"$work/detail"
  set +e
  (set -e; "$@") >"$work/check.log" 2>&1
  rc=$?
  set -e
  local detail
  detail=$(cat "$work/detail")
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'PASS  %s%s\n' "$name" "${detail:+ ($detail)}"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL  %s%s\n' "$name" "${detail:+ ($detail)}"
    tail -n 15 "$work/check.log" | sed 's/^/        /'
  fi
}
detail() { printf '%s' "$*" >"$work/detail"; }
