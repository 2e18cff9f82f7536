#!/usr/bin/env bash
# The systemd units of docs/systemd: shown verbatim in docs/deployment.md,
# accepted by systemd-analyze verify, and their command lines accepted by
# the program.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

root="$(cd "$(dirname "$0")/.." && pwd)"
command -v systemd-analyze >/dev/null || { echo "missing systemd-analyze (scripts/setup installs systemd)" >&2; exit 1; }

mkdir "$WORK/units"
for unit in "$root"/docs/systemd/*; do
  name=$(basename "$unit")
  python3 -c 'import sys; sys.exit(open(sys.argv[1]).read() not in open(sys.argv[2]).read())' \
    "$unit" "$root/docs/deployment.md" && ok || fail "$name is not shown as is in docs/deployment.md"
  # verify wants the program to exist where ExecStart says.
  sed "s|/usr/local/bin/fileupload|$BIN|" "$unit" >"$WORK/units/$name"
done
out=$(cd "$WORK/units" && systemd-analyze verify --man=no ./* 2>&1) && ok || fail "systemd-analyze verify failed"
check "systemd-analyze says nothing" "" "$out"

# The daemon's command line from fileupload.service starts.
cmd=$(sed -n 's|^ExecStart=/usr/local/bin/fileupload ||p' "$root/docs/systemd/fileupload.service")
read -r -a args <<<"$cmd"
args=("${args[@]/127.0.0.1:8080/127.0.0.1:0}")
"$BIN" --directory "$WORK/pool" "${args[@]}" 2>"$WORK/unit-daemon.log" &
PIDS+=("$!")
for i in $(seq 1 100); do grep -q 'listening on' "$WORK/unit-daemon.log" && break; sleep 0.05; done
grep -q 'listening on http://127.0.0.1:' "$WORK/unit-daemon.log" && ok || fail "the unit's daemon did not start: $(cat "$WORK/unit-daemon.log")"
# The gc lines run.
for unit in fileupload-gc.service fileupload-gc-unfinished.service; do
  cmd=$(sed -n 's|^ExecStart=/usr/local/bin/fileupload ||p' "$root/docs/systemd/$unit")
  read -r -a args <<<"$cmd"
  "$BIN" --directory "$WORK/pool" "${args[@]}" && ok || fail "$unit's command failed"
done

finish
