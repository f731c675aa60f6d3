#!/usr/bin/env bash
# Throwaway MariaDB server for the trackable test suite.
#
# Usage: scripts/mariadb.sh start|stop|url|status
#
#   start   install MariaDB if needed (apt-get), create a throwaway datadir,
#           start mariadbd on 127.0.0.1 and print the connection URL on stdout.
#           Idempotent: if the server already runs, only prints the URL.
#   stop    stop the server and delete the datadir.
#   url     print the connection URL.
#   status  exit 0 if the server is running, 1 otherwise.
#
# Environment:
#   TRACKABLE_DB_DIR         base directory   (default /tmp/trackable-db)
#   TRACKABLE_MARIADB_PORT   TCP port         (default 53306)
#
# Typical use:  export MYSQL_URL="$(scripts/mariadb.sh start)"
#
# Only the URL goes to stdout. Everything else is logged to
# $TRACKABLE_DB_DIR/mariadb.log (server error log included); on failure the
# tail of that file is printed to stderr. No systemd service is used.
set -euo pipefail
set -o errtrace

readonly BASE_DIR=${TRACKABLE_DB_DIR:-/tmp/trackable-db}
readonly PORT=${TRACKABLE_MARIADB_PORT:-53306}
readonly HOST=127.0.0.1
readonly DB_NAME=trackable DB_USER=trackable DB_PASS=trackable
readonly DATA_DIR=$BASE_DIR/mariadb
readonly SOCKET=$DATA_DIR/mariadbd.sock
readonly PID_FILE=$DATA_DIR/mariadbd.pid
readonly CNF_FILE=$BASE_DIR/mariadb.cnf
readonly LOG_FILE=$BASE_DIR/mariadb.log
readonly LOCK_FILE=$BASE_DIR/.mariadb.lock
readonly READY_MARKER=$DATA_DIR/trackable.ready
readonly URL="mysql://$DB_USER:$DB_PASS@$HOST:$PORT/$DB_NAME"
readonly PROG=${0##*/}

MARIADBD=
INSTALL_DB=
CLIENT=
ADMIN=
OWNER=
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

check_settings() {
    if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
        log "error: TRACKABLE_MARIADB_PORT must be a TCP port number, got '$PORT'"
        exit 2
    fi
    [[ $BASE_DIR == /* ]] ||
        { log "error: TRACKABLE_DB_DIR must be an absolute path, got '$BASE_DIR'"; exit 2; }
    [[ $BASE_DIR != *[[:space:]\'\"\\]* ]] ||
        { log "error: TRACKABLE_DB_DIR must not contain quotes, backslashes or whitespace"; exit 2; }
    # Unix socket paths are limited to 107 bytes.
    ((${#SOCKET} < 104)) ||
        { log "error: TRACKABLE_DB_DIR is too long for a unix socket path ($SOCKET)"; exit 2; }
}

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

# First executable found among the given names, in PATH or the sbin dirs
# (which are not in a normal user's PATH).
find_tool() {
    local name d
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
        for d in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin; do
            if [[ -x $d/$name ]]; then
                printf '%s\n' "$d/$name"
                return 0
            fi
        done
    done
    return 1
}

find_server() {
    MARIADBD=$(find_tool mariadbd mysqld) || return 1
    INSTALL_DB=$(find_tool mariadb-install-db mysql_install_db) || return 1
    CLIENT=$(find_tool mariadb mysql) || return 1
    ADMIN=$(find_tool mariadb-admin mysqladmin) || return 1
}

have_apt_lists() {
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

apt_get() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
        -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" </dev/null >>"$LOG_FILE" 2>&1
}

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
    # Keep maintainer scripts from starting the system service (no systemd
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

ensure_installed() {
    if ! find_server; then
        apt_install mariadb-server mariadb-client
        find_server || die "MariaDB was installed but mariadbd/mariadb-install-db/mariadb were not found"
    fi
}

pick_owner() {
    if [[ $EUID -ne 0 ]]; then
        OWNER=$(id -un)
        return 0
    fi
    if ! id mysql >/dev/null 2>&1; then
        logged useradd --system --user-group --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin mysql || die "cannot create the mysql user"
    fi
    OWNER=mysql
}

# Login used for administration over the socket: install-db gives root and
# the installing user unix_socket authentication.
admin_user() {
    if [[ $EUID -eq 0 ]]; then echo root; else id -un; fi
}

# ----------------------------------------------------------------- server ---

# True if the process exists and is not a zombie.
pid_alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# PID of the server if it is alive.
server_pid() {
    local pid
    pid=$(head -n 1 "$PID_FILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

is_running() {
    server_pid >/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

ping_server() {
    "$ADMIN" --no-defaults --protocol=socket --socket="$SOCKET" -u "$(admin_user)" \
        --connect-timeout=2 ping >/dev/null 2>&1
}

# Wait until the server answers; $1 is the PID of the starting server.
wait_ready() {
    local pid=$1 i
    for ((i = 0; i < 300; i++)); do
        if [[ -S $SOCKET ]] && ping_server; then
            return 0
        fi
        pid_alive "$pid" || die "mariadbd exited during startup"
        sleep 0.2
    done
    die "mariadbd did not answer within 60s"
}

write_config() {
    cat >"$CNF_FILE" <<EOF
# trackable throwaway test server (generated by scripts/mariadb.sh)
[mysqld]
datadir = $DATA_DIR
socket = $SOCKET
pid-file = $PID_FILE
log-error = $LOG_FILE
bind-address = $HOST
port = $PORT
skip-name-resolve
skip-log-bin
max_connections = 300
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
innodb_buffer_pool_size = 128M
innodb_log_file_size = 64M
performance_schema = OFF
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
EOF
    chmod 0644 "$CNF_FILE"
}

init_datadir() {
    log "creating datadir $DATA_DIR"
    rm -rf "$DATA_DIR"
    printf '\n==== %s: new datadir, %s ====\n' "$PROG" "$(date -u +%FT%TZ)" >>"$LOG_FILE"
    write_config
    mkdir -m 0750 "$DATA_DIR"
    local user_opt=()
    if [[ $EUID -eq 0 ]]; then
        chown "$OWNER:" "$DATA_DIR" "$LOG_FILE"
        user_opt=(--user="$OWNER")
        runuser -u "$OWNER" -- test -w "$DATA_DIR" ||
            die "user $OWNER cannot write $DATA_DIR; choose a TRACKABLE_DB_DIR it can reach (e.g. under /tmp)"
    fi
    (cd "$BASE_DIR" && logged "$INSTALL_DB" --defaults-file="$CNF_FILE" "${user_opt[@]}" \
        --skip-test-db --skip-name-resolve) ||
        die "mariadb-install-db failed"
}

# After a crash or kill -9 the pid file and socket are stale.
clear_stale_files() {
    local pid i
    pid=$(head -n 1 "$PID_FILE" 2>/dev/null) || pid=
    if [[ $pid =~ ^[0-9]+$ ]]; then
        for ((i = 0; i < 50; i++)); do
            [[ -e /proc/$pid ]] || break
            sleep 0.2
        done
    fi
    rm -f "$PID_FILE" "$SOCKET" "$SOCKET.lock"
}

start_server() {
    log "starting MariaDB on $HOST:$PORT"
    local user_opt=() pid
    if [[ $EUID -eq 0 ]]; then
        user_opt=(--user="$OWNER")
    fi
    # New session, no inherited stdio: the server must not keep the caller's
    # pipes open (e.g. URL=$(scripts/mariadb.sh start) would never return).
    (cd "$BASE_DIR" && exec setsid "$MARIADBD" --defaults-file="$CNF_FILE" "${user_opt[@]}" \
        </dev/null >>"$LOG_FILE" 2>&1 9>&-) &
    pid=$!
    wait_ready "$pid"
}

setup_database() {
    local u
    local sql="CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;"
    for u in "'$DB_USER'@'%'" "'$DB_USER'@'127.0.0.1'" "'$DB_USER'@'localhost'"; do
        sql+="
CREATE USER IF NOT EXISTS $u IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO $u;
GRANT ALL PRIVILEGES ON \`${DB_NAME}\\_%\`.* TO $u;"
    done
    logged "$CLIENT" --no-defaults --protocol=socket --socket="$SOCKET" -u "$(admin_user)" \
        --batch -e "$sql" ||
        die "creating user/database $DB_NAME failed"
    touch "$READY_MARKER"
}

cmd_start() {
    check_settings
    prepare_base_dir
    ensure_installed
    pick_owner
    local pid
    if pid=$(server_pid); then
        grep -q "^port = $PORT\$" "$CNF_FILE" 2>/dev/null ||
            die "the server in $DATA_DIR runs on another port; run '$PROG stop' first"
        wait_ready "$pid"
        [[ -f $READY_MARKER ]] || setup_database
        printf '%s\n' "$URL"
        return 0
    fi
    if port_in_use; then
        die "port $PORT on $HOST is already in use by another process (set TRACKABLE_MARIADB_PORT)"
    fi
    if [[ ! -d $DATA_DIR/mysql || ! -f $READY_MARKER ]]; then
        init_datadir
    else
        clear_stale_files
        write_config
    fi
    start_server
    setup_database
    log "ready"
    printf '%s\n' "$URL"
}

cmd_stop() {
    check_settings
    if [[ ! -d $DATA_DIR ]]; then
        log "not running (no datadir $DATA_DIR)"
        return 0
    fi
    prepare_base_dir
    local pid i
    if pid=$(server_pid); then
        log "stopping MariaDB (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            server_pid >/dev/null || break
            sleep 0.1
        done
        if server_pid >/dev/null; then
            log "mariadbd did not stop within 30s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$DATA_DIR"
    rm -f "$CNF_FILE"
    log "stopped; deleted $DATA_DIR"
}

cmd_status() {
    check_settings
    if is_running; then
        log "running: $URL"
        exit 0
    fi
    log "not running"
    exit 1
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
url) check_settings; printf '%s\n' "$URL" ;;
status) cmd_status ;;
*) usage ;;
esac
