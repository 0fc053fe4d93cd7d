#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: its own cluster in a temporary directory,
# listening on 127.0.0.1 only, run by a non-root user, stopped by its PID.
#
#   scripts/_postgres.sh start PORT   prints PGDIR=<dir> PGPID=<pid> PGPORT=<port> PGUSER=<user>
#   scripts/_postgres.sh stop DIR PID stops that server (fast shutdown) and removes DIR
#
# Installs Debian's `postgresql` when its binaries are missing (see _debian.sh). As root,
# the server runs as the `postgres` user that package creates (initdb refuses root).
set -euo pipefail
cd "$(dirname "$0")/.."

find_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
        . scripts/_debian.sh
        ensure_debian postgresql >&2
        found="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi
    echo "$found"
}

as_owner() {  # run a command as the cluster's owner
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local port="$1" bin dir user
    bin="$(find_bin)"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/crossgate-pg.XXXXXX")"
    if [ "$(id -u)" -eq 0 ]; then
        user=postgres
        chown postgres: "$dir"
    else
        user="$(id -un)"
    fi
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U "$user" -A trust --no-sync -E UTF8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # -k: the Unix socket in the cluster's own directory, not /var/run/postgresql.
    # fsync off: a test database that dies with the run needs no durability.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start \
        >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    local pid
    pid="$(head -n 1 "$dir/data/postmaster.pid")"
    echo "PGDIR=$dir PGPID=$pid PGPORT=$port PGUSER=$user"
}

stop() {
    local dir="$1" pid="$2"
    # SIGINT is PostgreSQL's fast shutdown: open sessions are ended, the server exits.
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    case "$dir" in
        */crossgate-pg.*) rm -rf "$dir" ;;
    esac
}

case "${1:-}" in
    start) start "${2:?port}" ;;
    stop) stop "${2:?dir}" "${3:?pid}" ;;
    *) echo "usage: $0 start PORT | stop DIR PID" >&2; exit 2 ;;
esac
