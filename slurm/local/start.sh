#!/usr/bin/env bash
# Start a SLURM cluster with accounting on localhost, of one node or several (see README.md).
#
#   slurm/local/start.sh [BASE_DIR]        # default BASE_DIR: /tmp/grw-slurm
#
# Start order: munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd, all plain background
# processes (no systemd) whose configuration, state, logs, pid files and sockets live under
# BASE_DIR. Waits until the nodes are idle, then prints `export SLURM_CONF=...` on stdout (progress
# goes to stderr), so `eval "$(slurm/local/start.sh)"` configures the calling shell.
# Safe to call twice: daemons that are already running are left as they are.
#
# Environment: GRW_SLURM_PORT (default 6817) is the slurmctld port; slurmd, slurmdbd and mariadbd
# listen on the next three. GRW_SLURM_NODES (default 1) is the number of nodes, each a slurmd on
# this machine: 127.0.0.1 in partition debug (the default), and with more, 127.0.0.2, 127.0.0.3,
# ... (slurmd of node N on port GRW_SLURM_PORT + 2 + N), all of them in partition multi. Ports and
# nodes are written into the configuration on the first start of a BASE_DIR (remove BASE_DIR to
# change them).
# GRW_SLURM_START_TIMEOUT (seconds, default 60) bounds each wait.
set -euo pipefail

HERE=$(dirname "$(realpath "$0")")
source "$HERE/common.sh"
PORT=${GRW_SLURM_PORT:-6817}
NODE_COUNT=${GRW_SLURM_NODES:-1}
TIMEOUT=${GRW_SLURM_START_TIMEOUT:-60}

log() { echo "start.sh: $*" >&2; }

# die MESSAGE: fail, showing the end of every log so the cause is visible where it failed (CI).
die() {
    log "ERROR: $*"
    local f
    for f in "$LOG"/*.log "$MUNGE_DIR"/munged.log; do
        [ -s "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
    done
    exit 1
}

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds or TIMEOUT passes.
wait_for() {
    local what=$1 deadline=$((SECONDS + TIMEOUT)) output
    shift
    until output=$("$@" 2>&1); do
        [ $SECONDS -lt $deadline ] ||
            die "timed out after ${TIMEOUT}s waiting for $what; the last check said: ${output:-nothing}"
        sleep 0.2
    done
}

# render TEMPLATE DEST: copy a template from this directory, replacing @NAME@ by the variable NAME.
render() {
    local text name
    text=$(<"$HERE/$1")
    for name in BASE_DIR LOG RUN MUNGE_SOCKET PORT SLURMD_PORT DBD_PORT DB_PORT DB_PASSWORD NODES; do
        text=${text//@$name@/${!name}}
    done
    printf '%s\n' "$text" >"$2"
}

write_config() {
    [ -f "$SLURM_CONF" ] && return
    log "writing the configuration to $ETC"
    SLURMD_PORT=$((PORT + 1)) DBD_PORT=$((PORT + 2)) DB_PORT=$((PORT + 3))
    DB_PASSWORD=$(tr -dc 'a-zA-Z0-9' </dev/urandom | head -c 24 || true)
    # CPUs, sockets, cores and memory of this machine, as slurmd detects them.
    NODE_HARDWARE=$(slurmd -C | head -n 1 | tr ' ' '\n' |
        grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
    NODES=$(node_lines)
    (
        umask 077  # slurmdbd.conf and the password file hold the database password
        render slurmdbd.conf.in "$ETC/slurmdbd.conf"
        printf '%s\n' "$DB_PORT" >"$ETC/mariadb.port"
        printf '%s\n' "$DB_PASSWORD" >"$ETC/mariadb.password"
    )
    render slurm.conf.in "$SLURM_CONF.tmp"
    mv "$SLURM_CONF.tmp" "$SLURM_CONF"  # last, so an interrupted write is redone next time
}

# The node and partition lines of slurm.conf. Node N is named by a loopback address of its own,
# 127.0.0.N, which reaches this machine and which a job's processes resolve without /etc/hosts (the
# first node of a job's node list is the master of its DDP processes). Not localhost: SLURM takes
# that name for this machine's hostname and then accepts no second node. Every node has this
# machine's hardware; the first has the default SlurmdPort.
node_lines() {
    local n
    echo "NodeName=127.0.0.1 NodeAddr=127.0.0.1 ${NODE_HARDWARE}State=UNKNOWN"
    for ((n = 2; n <= NODE_COUNT; n++)); do
        echo "NodeName=127.0.0.$n NodeAddr=127.0.0.$n Port=$((PORT + 2 + n)) ${NODE_HARDWARE}State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=127.0.0.1 Default=YES MaxTime=INFINITE State=UP"
    if [ "$NODE_COUNT" -gt 1 ]; then
        echo "PartitionName=multi Nodes=ALL MaxTime=INFINITE State=UP"
    fi
}

start_munged() {
    running munged && return
    log "starting munged"
    mkdir -p "$MUNGE_DIR"
    [ -f "$MUNGE_DIR/munge.key" ] || mungekey --create --keyfile="$MUNGE_DIR/munge.key"
    # As root, like the other daemons, so BASE_DIR may sit below private directories (pytest's
    # tmp_path). --force: munged otherwise refuses a socket below such a directory.
    munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="${PID_FILE[munged]}" --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" || die "munged failed to start"
    wait_for "munged" munge --socket="$MUNGE_SOCKET" --no-input
}

start_mariadbd() {
    running mariadbd && return
    local db_port db_password
    db_port=$(<"$ETC/mariadb.port") db_password=$(<"$ETC/mariadb.password")
    if [ ! -d "$DB_DIR/data/mysql" ]; then
        log "initialising the accounting database"
        mkdir -p "$DB_DIR"
        mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR/data" --skip-test-db \
            --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
    fi
    log "starting mariadbd"
    nohup mariadbd --no-defaults --user=root --datadir="$DB_DIR/data" --socket="$DB_SOCKET" \
        --bind-address=127.0.0.1 --port="$db_port" --skip-name-resolve --innodb-buffer-pool-size=64M \
        --pid-file="${PID_FILE[mariadbd]}" --log-error="$LOG/mariadbd.log" </dev/null >/dev/null 2>&1 &
    wait_for "mariadbd on port $db_port" mariadb-admin --no-defaults --socket="$DB_SOCKET" ping
    # The database user of slurmdbd (root logs in through the socket, being the OS root).
    mariadb --no-defaults --socket="$DB_SOCKET" --execute="
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_password';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create the database user"
}

start_slurmdbd() {
    running slurmdbd && return
    log "starting slurmdbd"
    slurmdbd || die "slurmdbd failed to start"  # finds slurmdbd.conf next to SLURM_CONF
    wait_for "slurmdbd" sacctmgr --noheader list cluster
}

start_slurmctld() {
    running slurmctld && return
    log "starting slurmctld"
    slurmctld -f "$SLURM_CONF" || die "slurmctld failed to start"
    wait_for "slurmctld" scontrol ping
}

start_slurmd() {
    local node
    for node in $(nodes); do
        running slurmd "$(slurmd_pid_file "$node")" && continue
        log "starting slurmd of node $node"
        slurmd -f "$SLURM_CONF" -N "$node" || die "slurmd of node $node failed to start"
    done
}

# Every node accepts jobs: idle on a fresh cluster, or busy with jobs when it was already running.
nodes_ready() {
    local states
    states=$(sinfo --noheader --Node --format=%t 2>&1 | sort -u) || true
    echo "node states: ${states:-none}"
    [ -n "$states" ] && ! grep -qvE '^(idle|mix|alloc|comp)$' <<<"$states"
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root)"
    [[ $NODE_COUNT =~ ^[1-9][0-9]*$ ]] && [ "$NODE_COUNT" -le 254 ] ||
        die "GRW_SLURM_NODES must be a number of nodes from 1 to 254, got $NODE_COUNT"
    command -v slurmctld >/dev/null || die "SLURM is not installed: run slurm/local/install.sh first"
    mkdir -p "$ETC" "$LOG" "$RUN" "$BASE_DIR/state" "$BASE_DIR/spool"
    write_config
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    wait_for "the nodes to become idle" nodes_ready
    log "cluster ready in $BASE_DIR"
    echo "export SLURM_CONF=$SLURM_CONF"
}

main
