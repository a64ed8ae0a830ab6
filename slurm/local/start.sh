#!/usr/bin/env bash
# Start a one-node SLURM cluster with accounting on localhost (see README.md).
#
#   slurm/local/start.sh [BASE_DIR]        # default BASE_DIR: /tmp/grw-slurm
#
# Start order: munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd, all plain background
# processes (no systemd) whose configuration, state, logs, pid files and sockets live under
# BASE_DIR. Waits until the node is idle, then prints `export SLURM_CONF=...` on stdout (progress
# goes to stderr), so `eval "$(slurm/local/start.sh)"` configures the calling shell.
# Safe to call twice: daemons that are already running are left as they are.
#
# Environment: GRW_SLURM_PORT (default 6817) is the slurmctld port; slurmd, slurmdbd and mariadbd
# listen on the next three. Ports are written into the configuration on the first start of a
# BASE_DIR (remove BASE_DIR to change them). GRW_SLURM_START_TIMEOUT (seconds, default 60) bounds
# each wait.
set -euo pipefail

HERE=$(dirname "$(realpath "$0")")
source "$HERE/common.sh"
PORT=${GRW_SLURM_PORT:-6817}
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
    for name in BASE_DIR LOG RUN MUNGE_SOCKET PORT SLURMD_PORT DBD_PORT DB_PORT DB_PASSWORD NODE_HARDWARE; do
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
    (
        umask 077  # slurmdbd.conf and the password file hold the database password
        render slurmdbd.conf.in "$ETC/slurmdbd.conf"
        printf '%s\n' "$DB_PORT" >"$ETC/mariadb.port"
        printf '%s\n' "$DB_PASSWORD" >"$ETC/mariadb.password"
    )
    render slurm.conf.in "$SLURM_CONF.tmp"
    mv "$SLURM_CONF.tmp" "$SLURM_CONF"  # last, so an interrupted write is redone next time
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
    running slurmd && return
    log "starting slurmd"
    slurmd -f "$SLURM_CONF" -N localhost || die "slurmd failed to start"
}

# The node accepts jobs: idle on a fresh cluster, or busy with jobs when it was already running.
node_ready() {
    local state
    state=$(sinfo --noheader --format=%t 2>&1) || true
    echo "node state: ${state:-none}"
    [[ $state =~ ^(idle|mix|alloc|comp)$ ]]
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root)"
    command -v slurmctld >/dev/null || die "SLURM is not installed: run slurm/local/install.sh first"
    mkdir -p "$ETC" "$LOG" "$RUN" "$BASE_DIR/state" "$BASE_DIR/spool"
    write_config
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    wait_for "the node to become idle" node_ready
    log "cluster ready in $BASE_DIR"
    echo "export SLURM_CONF=$SLURM_CONF"
}

main
