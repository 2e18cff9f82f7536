# Shared helpers of the shell-based integration tests; sourced, not run.
# Every process a test starts is recorded in PIDS and stopped by the trap.

BIN="${FILEUPLOAD_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/fileupload}"
# The Python test tools (scripts/tools).
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tools"
WORK=$(mktemp -d)
PIDS=()
FAILS=0
CHECKS=0

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}

ok() {
  CHECKS=$((CHECKS + 1))
}

# check DESCRIPTION EXPECTED ACTUAL
check() {
  if [ "$2" == "$3" ]; then ok; else fail "$1: expected [$2], got [$3]"; fi
}

# check_contains DESCRIPTION NEEDLE HAYSTACK
check_contains() {
  if [[ "$3" == *"$2"* ]]; then ok; else fail "$1: [$2] not in [$3]"; fi
}

# json FILE_OR_TEXT EXPRESSION: evaluates a Python expression on the JSON
# value `j`; prints the result (JSON for containers, plain for scalars).
json() {
  python3 -c '
import json, sys
j = json.loads(sys.argv[1])
v = eval(sys.argv[2])
print(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) or v is None or isinstance(v, bool) else v)
' "$1" "$2"
}

# start_daemon NAME [ARGS...]: starts `fileupload serve ARGS` on a free
# loopback port; sets URL and DAEMON_PID; the log goes to $WORK/NAME.log.
start_daemon() {
  local name=$1; shift
  local log="$WORK/$name.log"
  # Made before the daemon starts: the loop below may read it first.
  : >"$log"
  "$BIN" serve --listen 127.0.0.1:0 "$@" 2>"$log" &
  DAEMON_PID=$!
  PIDS+=("$DAEMON_PID")
  local i
  for i in $(seq 1 100); do
    URL=$(sed -n 's/^fileupload: listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$URL" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "daemon $name did not start:" >&2
  cat "$log" >&2
  return 1
}

# wait_for_state URL ID STATE [TRIES]: polls status until it reports STATE.
wait_for_state() {
  local i s
  for i in $(seq 1 "${4:-200}"); do
    s=$(curl -s "$1/upload/status?X-Progress-ID=$2")
    [ "$(json "$s" 'j["state"]')" == "$3" ] && return 0
    sleep 0.05
  done
  return 1
}

finish() {
  echo "$(basename "$0"): $CHECKS checks passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}

# thread_nices PID PREFIX: the nice values of the threads of PID whose
# name starts with PREFIX, sorted, each once.
thread_nices() {
  ps -L -o ni=,comm= -p "$1" | awk -v p="$2" 'index($2, p) == 1 {print $1}' | sort -un | tr '\n' ' ' | sed 's/ $//'
}
