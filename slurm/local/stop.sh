#!/usr/bin/env bash
# Stop the cluster that start.sh started in BASE_DIR (default /tmp/grw-slurm), in reverse start
# order, by the pids in its pid files. Jobs still queued or running are cancelled first. Daemons
# that are already stopped (or zombies) are skipped, so this is safe to call twice. BASE_DIR is
# kept: start.sh restarts the same cluster from it; remove it for a fresh one.
set -euo pipefail

HERE=$(dirname "$(realpath "$0")")
source "$HERE/common.sh"
GRACE_S=15  # seconds between SIGTERM and SIGKILL

log() { echo "stop.sh: $*" >&2; }

# Alive = /proc/PID exists and is not a zombie. Checked on the pid itself, not the pid file: slurmd
# removes its pid file while it still waits for job steps to end.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ! ${stat##*) } =~ ^[ZX] ]]
}

# stop_daemon DAEMON [PID_FILE]
stop_daemon() {
    local name=$1 pid waited=0
    pid=$(pid_of "$@") || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if [ $waited -ge $((GRACE_S * 10)) ]; then
            log "$name did not stop within ${GRACE_S}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

if running slurmctld; then
    scancel --quiet --partition=debug 2>/dev/null || true
    # Let cancelled jobs finish their steps; a slurmd stopped under a running step lingers.
    for _ in $(seq 1 $((GRACE_S * 2))); do
        [ -z "$(squeue --noheader 2>/dev/null)" ] && break
        sleep 0.5
    done
fi
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    if [ "${DAEMONS[i]}" = slurmd ]; then
        for node in $(nodes); do
            stop_daemon slurmd "$(slurmd_pid_file "$node")"
        done
    else
        stop_daemon "${DAEMONS[i]}"
    fi
done
log "stopped the cluster in $BASE_DIR"
