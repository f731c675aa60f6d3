# shellcheck shell=bash
# Shared part of scripts/postgres.sh and scripts/mariadb.sh: logging, error
# traps, the lock, apt-get installs, process checks and the command dispatch.
#
# Sourced, not run. Before sourcing, the script sets `set -euo pipefail` and
# `set -o errtrace` and defines PROG, BASE_DIR, HOST, PORT, PORT_VAR (the name
# of the variable that sets PORT), LOG_FILE, LOCK_FILE, READY_MARKER and URL.
# Before calling run_command it defines check_settings, ensure_installed,
# pick_owner, server_pid, reuse_server PID (check that the running server can
# serve as it is), prepare_data_dir, start_server, setup_database, cmd_stop
# and cmd_status.
#
# Only the URL goes to stdout: everything here writes to stderr or the log.

SUDO=()

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

show_log_tail() {
    if [[ -s $LOG_FILE ]]; then
        printf '%s: ---- last lines of %s ----\n' "$PROG" "$LOG_FILE" >&2
        tail -n 40 "$LOG_FILE" >&2 || true
        printf '%s: ----\n' "$PROG" >&2
    fi
}

die() {
    log "error: $*"
    show_log_tail
    exit 1
}

on_err() {
    local rc=$1 line=$2 cmd=$3
    trap - ERR
    log "error: command failed (exit $rc) at line $line: $cmd"
    show_log_tail
    exit "$rc"
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# Append a command's output to the log file. The lock descriptor (9) is closed
# so that a server started by the command does not inherit and hold the lock.
logged() { "$@" >>"$LOG_FILE" 2>&1 9>&-; }

usage() {
    echo "usage: $PROG start|stop|url|status" >&2
    exit 2
}

# Exit 2 unless PORT is a TCP port number and BASE_DIR an absolute path.
check_port_and_base_dir() {
    if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
        log "error: $PORT_VAR must be a TCP port number, got '$PORT'"
        exit 2
    fi
    [[ $BASE_DIR == /* ]] ||
        { log "error: TRACKABLE_DB_DIR must be an absolute path, got '$BASE_DIR'"; exit 2; }
}

# Exit 2 if the unix socket path $1 is too long: they are limited to 107 bytes.
check_socket_path() {
    ((${#1} < 104)) ||
        { log "error: TRACKABLE_DB_DIR is too long for a unix socket path ($1)"; exit 2; }
}

# Create BASE_DIR and the log file if needed, then take the lock (fd 9) for
# the rest of the script.
prepare_base_dir() {
    if [[ ! -d $BASE_DIR ]]; then
        mkdir -p "$BASE_DIR"
        chmod 0755 "$BASE_DIR"
    fi
    [[ -w $BASE_DIR ]] || { log "error: $BASE_DIR is not writable"; exit 1; }
    touch "$LOG_FILE" 2>/dev/null || { log "error: cannot write $LOG_FILE"; exit 1; }
    exec 9>>"$LOCK_FILE"
    flock -w 300 9 || die "timed out waiting for the lock $LOCK_FILE"
}

# ---------------------------------------------------------------- install ---

have_apt_lists() {
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

apt_get() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
        -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" </dev/null >>"$LOG_FILE" 2>&1
}

# Install the given packages with apt-get (through sudo when not root).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "$* missing and apt-get is not available; install it manually"
    if [[ $EUID -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO=(sudo -n)
        else
            die "$* is not installed; run as root or install it: apt-get install -y $*"
        fi
    fi
    log "installing $* with apt-get (log: $LOG_FILE)"
    # Keep maintainer scripts from starting system services (no systemd
    # here); invoke-rc.d honours policy-rc.d exit code 101 = "not allowed".
    local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        created_policy=1
    fi
    if ! have_apt_lists; then
        apt_get update || rc=$?
    fi
    if ((rc == 0)) && ! apt_get install --no-install-recommends "$@"; then
        # Stale package lists are the usual cause; refresh and retry once.
        rc=0
        apt_get update && apt_get install --no-install-recommends "$@" || rc=$?
    fi
    if ((created_policy)); then
        "${SUDO[@]}" rm -f "$policy"
    fi
    ((rc == 0)) || die "apt-get install $* failed (exit $rc)"
}

# ------------------------------------------------------------- processes ---

# True if the process exists and is not a zombie.
pid_alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# Print the PID on the first line of the file $1 if that process is alive.
alive_pid_in() {
    local pid
    pid=$(head -n 1 "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

# Give the process named on the first line of the file $1 up to 10s to go
# away. Fails if the file cannot be read.
wait_for_exit_of_pid_in() {
    local pid i
    pid=$(head -n 1 "$1" 2>/dev/null) || return 1
    if [[ $pid =~ ^[0-9]+$ ]]; then
        for ((i = 0; i < 50; i++)); do
            [[ -e /proc/$pid ]] || break
            sleep 0.2
        done
    fi
}

is_running() {
    server_pid >/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

# The end of `status`: exit 0 if the server runs, 1 otherwise.
report_status() {
    if is_running; then
        log "running: $URL"
        exit 0
    fi
    log "not running"
    exit 1
}

# --------------------------------------------------------------- commands ---

# Install if needed, start the server unless it runs, and print the URL: the
# only line on stdout.
cmd_start() {
    check_settings
    prepare_base_dir
    ensure_installed
    pick_owner
    local pid
    if pid=$(server_pid); then
        reuse_server "$pid"
        [[ -f $READY_MARKER ]] || setup_database
        printf '%s\n' "$URL"
        return 0
    fi
    if port_in_use; then
        die "port $PORT on $HOST is already in use by another process (set $PORT_VAR)"
    fi
    prepare_data_dir
    start_server
    setup_database
    log "ready"
    printf '%s\n' "$URL"
}

run_command() {
    case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) check_settings; printf '%s\n' "$URL" ;;
    status) cmd_status ;;
    *) usage ;;
    esac
}
