#!/usr/bin/env bash
# Throwaway PostgreSQL server for the trackable test suite.
#
# Usage: scripts/postgres.sh start|stop|url|status
#
#   start   install PostgreSQL if needed (apt-get), create a throwaway cluster,
#           start it on 127.0.0.1 and print the connection URL on stdout.
#           Idempotent: if the server already runs, only prints the URL.
#   stop    stop the server and delete the cluster.
#   url     print the connection URL.
#   status  exit 0 if the server is running, 1 otherwise.
#
# Environment:
#   TRACKABLE_DB_DIR    base directory   (default /tmp/trackable-db)
#   TRACKABLE_PG_PORT   TCP port         (default 55432)
#   TRACKABLE_PG_BIN    directory holding initdb/pg_ctl (default: auto-detect)
#
# Typical use:  export DATABASE_URL="$(scripts/postgres.sh start)"
#
# Only the URL goes to stdout. Everything else is logged to
# $TRACKABLE_DB_DIR/postgres.log (server log included); on failure the tail of
# that file is printed to stderr.
set -euo pipefail
set -o errtrace

readonly BASE_DIR=${TRACKABLE_DB_DIR:-/tmp/trackable-db}
readonly PORT=${TRACKABLE_PG_PORT:-55432} PORT_VAR=TRACKABLE_PG_PORT
readonly HOST=127.0.0.1
readonly DB_NAME=trackable DB_USER=trackable DB_PASS=trackable
readonly PGDATA_DIR=$BASE_DIR/pg
readonly LOG_FILE=$BASE_DIR/postgres.log
readonly LOCK_FILE=$BASE_DIR/.postgres.lock
readonly READY_MARKER=$PGDATA_DIR/trackable.ready
readonly URL="postgres://$DB_USER:$DB_PASS@$HOST:$PORT/$DB_NAME"
readonly PROG=${0##*/}

PGBIN=
OWNER=

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Run a command as the cluster owner (postgres when root, else ourselves).
as_owner() {
    if [[ $EUID -eq 0 && $OWNER != root ]]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

check_settings() {
    check_port_and_base_dir
    [[ $BASE_DIR != *"'"* && $BASE_DIR != *[[:space:]]* ]] ||
        { log "error: TRACKABLE_DB_DIR must not contain quotes or whitespace"; exit 2; }
    check_socket_path "$PGDATA_DIR/.s.PGSQL.$PORT"
}

# ---------------------------------------------------------------- install ---

find_pg_bin() {
    local d c
    if [[ -n ${TRACKABLE_PG_BIN:-} ]]; then
        [[ -x $TRACKABLE_PG_BIN/initdb && -x $TRACKABLE_PG_BIN/pg_ctl ]] ||
            die "TRACKABLE_PG_BIN=$TRACKABLE_PG_BIN does not contain initdb and pg_ctl"
        PGBIN=$TRACKABLE_PG_BIN
        return 0
    fi
    if c=$(command -v pg_ctl 2>/dev/null) && command -v initdb >/dev/null 2>&1; then
        d=$(dirname "$(readlink -f "$c")")
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
            PGBIN=$d
            return 0
        fi
    fi
    # Debian keeps the server binaries out of PATH.
    while read -r d; do
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
            PGBIN=$d
            return 0
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    return 1
}

ensure_installed() {
    if ! find_pg_bin; then
        apt_install postgresql
        find_pg_bin || die "PostgreSQL was installed but initdb/pg_ctl were not found"
    fi
    local tool
    for tool in postgres psql pg_isready; do
        [[ -x $PGBIN/$tool ]] || die "$PGBIN/$tool not found"
    done
}

pick_owner() {
    if [[ $EUID -ne 0 ]]; then
        OWNER=$(id -un)
        return 0
    fi
    if ! id postgres >/dev/null 2>&1; then
        logged useradd --system --user-group --home-dir "$BASE_DIR" --no-create-home \
            --shell /bin/sh postgres || die "cannot create the postgres user"
    fi
    command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is required when running as root"
    OWNER=postgres
}

# ----------------------------------------------------------------- server ---

# PID of the postmaster if it is alive (zombies count as dead).
server_pid() {
    alive_pid_in "$PGDATA_DIR/postmaster.pid"
}

wait_ready() {
    local i
    for ((i = 0; i < 300; i++)); do
        if "$PGBIN/pg_isready" -q -h "$HOST" -p "$PORT" -U postgres -d postgres -t 2; then
            return 0
        fi
        is_running || die "the server exited during startup"
        sleep 0.2
    done
    die "the server did not accept connections on $HOST:$PORT within 60s"
}

init_cluster() {
    log "creating cluster in $PGDATA_DIR"
    rm -rf "$PGDATA_DIR"
    printf '\n==== %s: new cluster, %s ====\n' "$PROG" "$(date -u +%FT%TZ)" >>"$LOG_FILE"
    mkdir -m 0700 "$PGDATA_DIR"
    if [[ $EUID -eq 0 ]]; then
        chown "$OWNER:" "$PGDATA_DIR" "$LOG_FILE"
        as_owner test -w "$PGDATA_DIR" ||
            die "user $OWNER cannot write $PGDATA_DIR; choose a TRACKABLE_DB_DIR it can reach (e.g. under /tmp)"
    fi
    logged as_owner "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=trust --no-sync ||
        die "initdb failed"
    cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# ---- trackable throwaway test server ----
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$PGDATA_DIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = '30min'
max_wal_size = '2GB'
log_min_messages = warning
EOF
}

# After a crash or kill -9 the lock files still name the dead postmaster;
# the postmaster refuses to start while that PID exists (even as a zombie).
clear_stale_lock_files() {
    wait_for_exit_of_pid_in "$PGDATA_DIR/postmaster.pid" || return 0
    rm -f "$PGDATA_DIR/postmaster.pid" "$PGDATA_DIR"/.s.PGSQL.*.lock
}

start_server() {
    log "starting PostgreSQL on $HOST:$PORT"
    logged as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_FILE" -w -t 60 start ||
        die "pg_ctl start failed"
    wait_ready
}

setup_database() {
    logged "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGDATA_DIR" -p "$PORT" -U postgres -d postgres <<EOF ||
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER ENCODING ''UTF8'''
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
EOF
        die "creating role/database $DB_NAME failed"
    touch "$READY_MARKER"
}

# The cluster runs already: it must listen on PORT, and answer.
reuse_server() {
    local pid_port
    pid_port=$(sed -n 4p "$PGDATA_DIR/postmaster.pid")
    [[ $pid_port == "$PORT" ]] ||
        die "the cluster in $PGDATA_DIR already runs on port $pid_port; run '$PROG stop' first"
    wait_ready
}

prepare_data_dir() {
    if [[ ! -f $PGDATA_DIR/PG_VERSION || ! -f $READY_MARKER ]]; then
        init_cluster
    else
        clear_stale_lock_files
    fi
}

kill_from_pidfile() {
    local pid
    pid=$(server_pid) || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    check_settings
    if [[ ! -d $PGDATA_DIR ]]; then
        log "not running (no cluster in $PGDATA_DIR)"
        return 0
    fi
    prepare_base_dir
    pick_owner
    if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
        log "stopping PostgreSQL"
        if ! find_pg_bin || ! logged as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 stop; then
            kill_from_pidfile
        fi
    fi
    rm -rf "$PGDATA_DIR"
    log "stopped; deleted $PGDATA_DIR"
}

cmd_status() {
    check_settings
    find_pg_bin || exit 1
    pick_owner
    report_status
}

run_command "$@"
