# shellcheck shell=bash
# GlusterFS for the cluster tests: install when missing, glusterd started by
# PID, a replica-2 volume of two bricks in temporary directories, one FUSE
# mount per simulated host. Sourced by scripts/test-cluster.sh; every
# function expects `set -euo pipefail` and a work directory in $CLUSTER_WORK.

# Runs apt-get, waiting while another apt or dpkg holds the lock.
cluster_apt() {
    local try
    for try in $(seq 1 120); do
        if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=10 "$@"; then
            return 0
        fi
        # Lock held (another helper installing) or a transient failure.
        echo "apt-get $* failed (try $try); retrying in 5 s" >&2
        sleep 5
    done
    return 1
}

# Installs glusterfs-server and glusterfs-client when glusterd or the FUSE
# mount helper is missing.
cluster_install() {
    if command -v glusterd >/dev/null && command -v glusterfs >/dev/null \
        && command -v gluster >/dev/null; then
        return 0
    fi
    cluster_apt update
    cluster_apt install -y glusterfs-server glusterfs-client
}

# The PIDs this library started, stopped by cluster_teardown.
CLUSTER_GLUSTERD_PID=
CLUSTER_MOUNT_PIDS=()
CLUSTER_MOUNTS=()
CLUSTER_VOLUME=
CLUSTER_BRICKS=()
CLUSTER_VOLUME_STOPPED=
# The address glusterd, the bricks and the clients use: a loopback address
# other than 127.0.0.1, which glusterd refuses as a brick host; or, with
# network namespaces (cluster_net_up), the storage namespace's address.
CLUSTER_HOST=${CLUSTER_HOST:-127.0.0.2}
_CLUSTER_LOOPBACK_HOST=$CLUSTER_HOST
# With network namespaces: their names (made by cluster_net_up, deleted by
# cluster_teardown), the commands that run a program in the storage
# namespace and in the front one, and per host its namespace and address;
# without, all empty and glusterd on the loopback address.
_cluster_net_reset() {
    CLUSTER_NETNS_MADE=()
    CLUSTER_HOST=$_CLUSTER_LOOPBACK_HOST
    CLUSTER_STORAGE_NETNS=
    CLUSTER_IN_STORAGE=()
    CLUSTER_IN_FRONT=()
    CLUSTER_HOST_NETNS=()
    CLUSTER_HOST_ADDRS=()
    CLUSTER_FRONT_ADDR=
}
_cluster_net_reset
# Extra glusterfs client options for every mount (see docs/cluster.md).
CLUSTER_MOUNT_OPTIONS=${CLUSTER_MOUNT_OPTIONS:-}

# cluster_net_up HOSTS: a private network of namespaces, one per host, so
# that each host has an address of its own and its Gluster client its own
# connections, which the network can take away (a host that vanishes
# without closing them). A bridge in the storage namespace (glusterd and
# the bricks, 198.18.0.2) joins the front namespace (the balancer and the
# test driver, 198.18.0.10) and the hosts' (198.18.0.11, .12, ...), each
# by a veth pair. 198.18.0.0/15 is the range set aside for tests (RFC
# 2544), and nothing here is routed to or from the machine's own network
# namespace: every server still binds to an address no other machine, and
# no process outside these namespaces, can reach. Fails (returning 1, the
# namespaces made so far deleted) where namespaces cannot be made.
cluster_net_up() {
    local hosts=$1 net="fu$$" i name addr
    _cluster_ns() {
        ip netns add "$1" && CLUSTER_NETNS_MADE+=("$1") && ip -n "$1" link set lo up
    }
    # Joins namespace $1 to the bridge with address $2; $3 names the
    # bridge's end of the pair.
    _cluster_join() {
        ip -n "$1" link add eth0 type veth peer name "$3" netns "$net-s" \
            && ip -n "$1" addr add "$2/24" dev eth0 \
            && ip -n "$1" link set eth0 up \
            && ip -n "$net-s" link set dev "$3" master br0 up
    }
    if ! { _cluster_ns "$net-s" \
        && ip -n "$net-s" link add br0 type bridge \
        && ip -n "$net-s" addr add 198.18.0.2/24 dev br0 \
        && ip -n "$net-s" link set br0 up \
        && _cluster_ns "$net-f" && _cluster_join "$net-f" 198.18.0.10 bfront; }; then
        _cluster_net_down
        return 1
    fi
    CLUSTER_HOST=198.18.0.2
    CLUSTER_STORAGE_NETNS=$net-s
    CLUSTER_IN_STORAGE=(nsenter "--net=/run/netns/$net-s" --)
    CLUSTER_IN_FRONT=(nsenter "--net=/run/netns/$net-f" --)
    CLUSTER_FRONT_ADDR=198.18.0.10
    for i in $(seq 1 "$hosts"); do
        name="$net-h$i" addr="198.18.0.$((10 + i))"
        if ! { _cluster_ns "$name" && _cluster_join "$name" "$addr" "bh$i"; }; then
            _cluster_net_down
            return 1
        fi
        CLUSTER_HOST_NETNS+=("$name")
        CLUSTER_HOST_ADDRS+=("$addr")
    done
}

# Deletes the namespaces cluster_net_up made (a namespace that a process
# still holds goes with that process).
_cluster_net_down() {
    local ns
    for ns in "${CLUSTER_NETNS_MADE[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    _cluster_net_reset
}

# Starts glusterd, by PID, with its state in $CLUSTER_WORK/glusterd and its
# management port on $CLUSTER_HOST only. Fails when another glusterd runs: it
# owns port 24007 and the CLI socket.
cluster_start_glusterd() {
    if pgrep -x glusterd >/dev/null; then
        echo "a glusterd this script did not start is running; refusing to share it" >&2
        return 1
    fi
    mkdir -p "$CLUSTER_WORK/glusterd" "$CLUSTER_WORK/log"
    cat >"$CLUSTER_WORK/glusterd.vol" <<VOL
volume management
    type mgmt/glusterd
    option working-directory $CLUSTER_WORK/glusterd
    option transport-type socket
    option transport.address-family inet
    option transport.socket.bind-address $CLUSTER_HOST
    option transport.socket.listen-port 24007
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
end-volume
VOL
    "${CLUSTER_IN_STORAGE[@]}" glusterd -N -f "$CLUSTER_WORK/glusterd.vol" \
        -l "$CLUSTER_WORK/log/glusterd.log" &
    CLUSTER_GLUSTERD_PID=$!
    local i
    for i in $(seq 1 100); do
        if cluster_gluster volume list >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$CLUSTER_GLUSTERD_PID" || { echo "glusterd died; see $CLUSTER_WORK/log/glusterd.log" >&2; return 1; }
        sleep 0.1
    done
    echo "glusterd did not answer in 10 s" >&2
    return 1
}

# The gluster CLI, where glusterd runs.
cluster_gluster() {
    "${CLUSTER_IN_STORAGE[@]}" gluster --mode=script "$@"
}

# Creates and starts a replica-2 volume NAME of two bricks in temporary
# directories ("force": the bricks are on the root filesystem and on one
# host), then sets the options of docs/cluster.md, given as "key value" pairs
# in CLUSTER_VOLUME_OPTIONS (one a line).
cluster_create_volume() {
    CLUSTER_VOLUME=$1
    local b1 b2
    b1=$(mktemp -d "$CLUSTER_WORK/brick1.XXXX")
    b2=$(mktemp -d "$CLUSTER_WORK/brick2.XXXX")
    CLUSTER_BRICKS=("$b1" "$b2")
    cluster_gluster volume create "$CLUSTER_VOLUME" replica 2 transport tcp \
        "$CLUSTER_HOST:$b1" "$CLUSTER_HOST:$b2" force >/dev/null
    local key value
    while read -r key value; do
        [ -n "$key" ] || continue
        cluster_gluster volume set "$CLUSTER_VOLUME" "$key" "$value" >/dev/null
    done <<<"${CLUSTER_VOLUME_OPTIONS:-}"
    cluster_gluster volume start "$CLUSTER_VOLUME" >/dev/null
}

# cluster_mount [NETNS]: mounts the volume at a new directory with its own
# FUSE client (one simulated host, one lock owner), run in network
# namespace NETNS when given; the mount itself is seen by every process.
# Its path is left in CLUSTER_LAST_MOUNT (not printed: a command
# substitution would lose the PID bookkeeping).
cluster_mount() {
    local dir n in_ns=()
    n=${#CLUSTER_MOUNTS[@]}
    dir=$(mktemp -d "$CLUSTER_WORK/mnt$n.XXXX")
    [ -z "${1:-}" ] || in_ns=(nsenter "--net=/run/netns/$1" --)
    # shellcheck disable=SC2086 # options are words on purpose
    "${in_ns[@]}" glusterfs -N --volfile-server=$CLUSTER_HOST --volfile-id="$CLUSTER_VOLUME" \
        -l "$CLUSTER_WORK/log/mnt$n.log" $CLUSTER_MOUNT_OPTIONS "$dir" \
        </dev/null >/dev/null 2>&1 &
    CLUSTER_MOUNT_PIDS+=("$!")
    CLUSTER_MOUNTS+=("$dir")
    local i
    for i in $(seq 1 100); do
        if mountpoint -q "$dir" && [ -w "$dir" ] && stat "$dir" >/dev/null 2>&1; then
            CLUSTER_LAST_MOUNT=$dir
            return 0
        fi
        sleep 0.1
    done
    echo "mount $n of $CLUSTER_VOLUME did not come up; see $CLUSTER_WORK/log/mnt$n.log" >&2
    return 1
}

# Unmounts every mount, stops and deletes the volume, stops glusterd and the
# self-heal daemon it started. Safe to call twice and after a partial set-up.
cluster_teardown() {
    local dir pid i
    for dir in "${CLUSTER_MOUNTS[@]}"; do
        # Unconditionally: `mountpoint` cannot stat a mount whose FUSE
        # client died (ENOTCONN), and a directory that is no mount point
        # only makes umount fail.
        umount "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
    done
    for pid in "${CLUSTER_MOUNT_PIDS[@]}"; do
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill "$pid" 2>/dev/null || true
    done
    CLUSTER_MOUNTS=()
    CLUSTER_MOUNT_PIDS=()
    # The brick and self-heal daemons glusterd started for the volume.
    local daemons=()
    if [ -n "$CLUSTER_VOLUME" ]; then
        local f
        for f in /var/run/gluster/vols/"$CLUSTER_VOLUME"/*.pid /var/run/gluster/shd/"$CLUSTER_VOLUME"/*.pid; do
            [ -f "$f" ] && daemons+=("$(cat "$f")")
        done
    fi
    CLUSTER_VOLUME_STOPPED=$CLUSTER_VOLUME
    if [ -n "$CLUSTER_VOLUME" ] && [ -n "$CLUSTER_GLUSTERD_PID" ]; then
        cluster_gluster volume stop "$CLUSTER_VOLUME" force >/dev/null 2>&1 || true
        cluster_gluster volume delete "$CLUSTER_VOLUME" >/dev/null 2>&1 || true
        CLUSTER_VOLUME=
    fi
    # A PID file may outlive its process: kill only a process that is still
    # a Gluster daemon of this volume.
    for pid in "${daemons[@]}"; do
        [ -n "$pid" ] || continue
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -Eq -- "--volfile-id ($CLUSTER_VOLUME_STOPPED\\.|shd/$CLUSTER_VOLUME_STOPPED )"; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "$CLUSTER_VOLUME_STOPPED" ]; then
        # glusterd leaves the volume's run directories behind.
        rm -f /var/run/gluster/vols/"$CLUSTER_VOLUME_STOPPED"/*.pid /var/run/gluster/shd/"$CLUSTER_VOLUME_STOPPED"/*.pid
        rmdir /var/run/gluster/vols/"$CLUSTER_VOLUME_STOPPED" /var/run/gluster/shd/"$CLUSTER_VOLUME_STOPPED" 2>/dev/null || true
    fi
    if [ -n "$CLUSTER_GLUSTERD_PID" ]; then
        kill "$CLUSTER_GLUSTERD_PID" 2>/dev/null || true
        wait "$CLUSTER_GLUSTERD_PID" 2>/dev/null || true
        CLUSTER_GLUSTERD_PID=
    fi
    _cluster_net_down
}
