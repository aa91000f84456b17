#!/usr/bin/env bash
# A throwaway PostgreSQL for optmem's tests: a cluster in a directory of its own, reachable only
# through a unix socket in that directory (no TCP), trusted for the local user "optmem".
#
#   DSN=$(bash .ci/postgres.sh start DIR)   # DIR must be missing or empty; prints the DSN
#   OPTMEM_TEST_POSTGRES_DSN=$DSN python -m pytest -q tests/test_store*.py
#   bash .ci/postgres.sh stop DIR           # stops the server and removes DIR
#
# initdb refuses to run as root: as root, the cluster is made and run by the unprivileged user
# $OPTMEM_PG_USER (default: nobody), who then owns DIR. The data are not crash-safe (fsync off):
# this cluster exists for tests only.
set -euo pipefail

DATABASE=optmem_test
SUPERUSER=optmem
MARKER=.optmem-test-postgres  # stop removes only a directory that start made

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
    # PostgreSQL's server programs: on PATH, or the newest of Debian's /usr/lib/postgresql/*/bin.
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "no PostgreSQL found (initdb not on PATH, nothing in /usr/lib/postgresql)"
    echo "$dir"
}

as_owner() {
    # Run "$@" as the cluster's owner: ourselves, or the unprivileged user when we are root.
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    else
        setpriv --reuid="$OWNER_UID" --regid="$OWNER_GID" --clear-groups -- "$@"
    fi
}

owner() {
    if [ "$(id -u)" -eq 0 ]; then
        local user=${OPTMEM_PG_USER:-nobody}
        OWNER_UID=$(id -u "$user") || die "user $user does not exist (set OPTMEM_PG_USER to an unprivileged user)"
        OWNER_GID=$(id -g "$user")
        [ "$OWNER_UID" -ne 0 ] || die "OPTMEM_PG_USER must not be root"
    fi
}

start() {
    local dir=$1 bin
    bin=$(bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    # The socket path must fit in sun_path (107 bytes).
    [ ${#dir} -le 80 ] || die "$dir is too long a path for a unix socket; use a shorter one (e.g. under /tmp)"
    owner
    touch "$dir/$MARKER"
    mkdir "$dir/socket"
    chmod 700 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R "$OWNER_UID:$OWNER_GID" "$dir"
    fi
    cd "$dir"  # the owner may not be allowed into the caller's working directory
    as_owner "$bin/initdb" --pgdata="$dir/data" --username="$SUPERUSER" --auth=trust --encoding=UTF8 \
        --locale=C --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    as_owner "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait --timeout=60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir/socket' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >&2 || { cat "$dir/server.log" >&2; die "the server did not start"; }
    as_owner "$bin/createdb" --host="$dir/socket" --username="$SUPERUSER" "$DATABASE" >&2
    echo "postgresql:///$DATABASE?host=$dir/socket&user=$SUPERUSER"
}

stop() {
    local dir=$1 bin
    [ -d "$dir" ] || return 0
    [ -e "$dir/$MARKER" ] || die "$dir was not made by postgres.sh start; not touching it"
    bin=$(bindir)
    owner
    cd "$dir"
    if [ -e "$dir/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" --pgdata="$dir/data" --wait --timeout=60 --mode=fast stop >&2 || true
    fi
    cd /
    rm -rf "$dir"
}

case "${1:-}" in
    start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 start DIR | stop DIR" ;;
esac
