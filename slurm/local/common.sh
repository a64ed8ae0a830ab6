# Shared by start.sh and stop.sh (sourced, not run): the layout of BASE_DIR and process checks.

BASE_DIR=$(realpath -m "${1:-/tmp/grw-slurm}")
ETC=$BASE_DIR/etc LOG=$BASE_DIR/log RUN=$BASE_DIR/run
MUNGE_DIR=$BASE_DIR/munge DB_DIR=$BASE_DIR/mariadb
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
DB_SOCKET=$DB_DIR/mariadb.sock
export SLURM_CONF=$ETC/slurm.conf

# Daemon name -> pid file, in start order.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
declare -A PID_FILE=(
    [munged]=$MUNGE_DIR/munged.pid
    [mariadbd]=$RUN/mariadbd.pid
    [slurmdbd]=$RUN/slurmdbd.pid
    [slurmctld]=$RUN/slurmctld.pid
    [slurmd]=$RUN/slurmd.pid
)

# pid_of DAEMON: print its pid and succeed when it is alive. A zombie counts as stopped (PID 1 on
# our machines does not reap orphans), and so does a recycled pid running another program. A
# process is alive while any of its threads is (an exiting daemon's main thread can die first).
pid_of() {
    local pid stat task
    pid=$(cat "${PID_FILE[$1]}" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # /proc/PID/stat reads "PID (COMM) STATE ...".
    [[ $stat =~ ^$pid\ \((.*)\)\  ]] && [ "${BASH_REMATCH[1]}" = "$1" ] || return 1
    for task in /proc/"$pid"/task/*/stat; do
        stat=$(cat "$task" 2>/dev/null) || continue
        if [[ ! ${stat##*) } =~ ^[ZX] ]]; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

running() { pid_of "$1" >/dev/null; }
