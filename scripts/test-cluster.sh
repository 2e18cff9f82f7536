#!/usr/bin/env bash
# Several hosts, one pool (issue 12): a GlusterFS replica-2 volume of two
# bricks in temporary directories, one FUSE mount per simulated host, a
# daemon on each mount, and the cross-host checks of scripts/cluster.py:
# status rising on B for an upload on A, a clear on B of A's running upload,
# kill -9 of A's daemon seen on B, same-identifier races across hosts, and
# many uploads with pollers on every host, none misreported; a fleet: the
# daemon, the FastCGI responder behind nginx and the CGI program under
# Apache, one per mount, behind an nginx balancer (cluster.py says how);
# a tus upload sent in parts to different hosts; the pool's gauges alike
# on every host; a host whose network is cut mid-upload; /healthz 503 on a
# host whose Gluster client is killed, 200 on the others.
#
# Each host runs in a network namespace of its own where namespaces can be
# made (lib-cluster.sh's cluster_net_up; CLUSTER_NETNS=0 turns them off),
# on a loopback address of its own otherwise.
#
# Installs glusterfs-server and glusterfs-client when missing (Debian).
# Environment: BIN (default target/release/fileupload, built when missing),
# HOSTS (default 3), RACE_ROUNDS, LOAD_UPLOADS, LOAD_POLLERS, LOAD_RATE,
# FLEET_UPLOADS, FLEET_PARALLEL, FLEET_RATE, CHECKS (default "rising clear
# cli kill race load fleet tus brick gauges cut healthz"; healthz leaves a
# mount dead, so it comes last), CLUSTER_NETNS, CLUSTER_MOUNT_OPTIONS,
# CLUSTER_VOLUME_OPTIONS (see docs/cluster.md for both).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
source "$HERE/lib-cluster.sh"

BIN=${BIN:-$ROOT/target/release/fileupload}
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
HOSTS=${HOSTS:-3}
CHECKS=${CHECKS:-rising clear cli kill race load fleet tus brick gauges cut healthz}
export RACE_ROUNDS=${RACE_ROUNDS:-100} LOAD_UPLOADS=${LOAD_UPLOADS:-48} LOAD_POLLERS=${LOAD_POLLERS:-3}
# The tested recipe (docs/cluster.md): the FUSE client keeps no names or
# attributes, and the client translators that answer from a cache or open
# late are off. Set either to an empty value to see Gluster's defaults.
CLUSTER_MOUNT_OPTIONS=${CLUSTER_MOUNT_OPTIONS---entry-timeout=0 --attribute-timeout=0 --negative-timeout=0}
CLUSTER_VOLUME_OPTIONS=${CLUSTER_VOLUME_OPTIONS-performance.open-behind off
performance.quick-read off
performance.stat-prefetch off}

CLUSTER_WORK=$(mktemp -d)
cleanup() {
    local rc=$? pid
    if [ -f "$CLUSTER_WORK/pids" ]; then
        while read -r pid; do
            kill -9 "$pid" 2>/dev/null || true
        done <"$CLUSTER_WORK/pids"
    fi
    cluster_teardown
    if [ "$rc" -ne 0 ] && [ -d "$CLUSTER_WORK/log" ]; then
        echo "logs kept in $CLUSTER_WORK" >&2
    else
        rm -rf "$CLUSTER_WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cluster_install
start=$(date +%s.%N)
# A network namespace per host where the kernel lets us make them
# (CLUSTER_NETNS=0: loopback addresses stand for hosts instead).
if [ "${CLUSTER_NETNS:-1}" != 0 ] && cluster_net_up "$HOSTS"; then
    echo "hosts in network namespaces: ${CLUSTER_HOST_ADDRS[*]}, the balancer and the checks at $CLUSTER_FRONT_ADDR, glusterd at $CLUSTER_HOST"
else
    echo "hosts on loopback addresses (no network namespaces)"
fi
cluster_start_glusterd
cluster_create_volume "fu$$"
mounts=()
for i in $(seq 0 $((HOSTS - 1))); do
    cluster_mount "${CLUSTER_HOST_NETNS[i]:-}"
    mounts+=("$CLUSTER_LAST_MOUNT")
done
printf 'gluster volume and %s mounts up in %.1f s\n' "$HOSTS" "$(echo "$(date +%s.%N) - $start" | bc)"

# The FUSE clients, one per mount in order, for the healthz check to kill.
export CLUSTER_FUSE_PIDS="${CLUSTER_MOUNT_PIDS[*]}"
# The volume and its bricks, for the brick check to stop one and heal it.
export CLUSTER_VOLUME CLUSTER_BRICK_DIRS="${CLUSTER_BRICKS[*]}"
# Where the hosts are: their namespaces (none on loopback addresses), and
# their addresses and the front's; the checks run in the front namespace.
# (Arrays are not exported: each goes as one word list.)
export HOSTS_NETNS="${CLUSTER_HOST_NETNS[*]}" HOSTS_ADDRS="${CLUSTER_HOST_ADDRS[*]}"
export CLUSTER_FRONT_ADDR CLUSTER_STORAGE_NETNS
# shellcheck disable=SC2086 # CHECKS is a list of words
"${CLUSTER_IN_FRONT[@]}" python3 "$HERE/cluster.py" "$BIN" "$CLUSTER_WORK" "${mounts[@]}" -- $CHECKS
