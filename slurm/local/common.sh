# Shared by start.sh and stop.sh (sourced, not run): the layout of BASE_DIR and process checks.

BASE_DIR=$(realpath -m "${1:-/tmp/grw-slurm}")
ETC=$BASE_DIR/etc LOG=$BASE_DIR/log RUN=$BASE_DIR/run
MUNGE_DIR=$BASE_DIR/munge DB_DIR=$BASE_DIR/mariadb
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
DB_SOCKET=$DB_DIR/mariadb.sock
export SLURM_CONF=$ETC/slurm.conf

# Daemon name -> pid file, in start order. slurmd runs once per node: see slurmd_pid_file.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
declare -A PID_FILE=(
    [munged]=$MUNGE_DIR/munged.pid
    [mariadbd]=$RUN/mariadbd.pid
    [slurmdbd]=$RUN/slurmdbd.pid
    [slurmctld]=$RUN/slurmctld.pid
)

# The nodes slurm.conf defines (each has its own slurmd); none before the first start.
nodes() { sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$SLURM_CONF" 2>/dev/null || true; }

# slurmd_pid_file NODE: slurm.conf's SlurmdPidFile for NODE (%n is the node's name).
slurmd_pid_file() {
    local pattern
    pattern=$(sed -n 's/^SlurmdPidFile=//p' "$SLURM_CONF")
    echo "${pattern//%n/$1}"
}

# pid_of DAEMON [PID_FILE]: print its pid and succeed when it is alive (PID_FILE defaults to the
# daemon's in PID_FILE). A zombie counts as stopped (PID 1 on
# our machines does not reap orphans), and so does a recycled pid running another program. A
# process is alive while any of its threads is (an exiting daemon's main thread can die first).
pid_of() {
    local pid stat task
    pid=$(cat "${2:-${PID_FILE[$1]}}" 2>/dev/null) || return 1
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

running() { pid_of "$@" >/dev/null; }
