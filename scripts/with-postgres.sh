#!/usr/bin/env bash
# Run a command next to a throw-away PostgreSQL built from this machine's own postgres binaries:
# initdb into a temp dir, start it on a free port, export AITRADER_TEST_DATABASE_URL, run the
# command, then stop the server and delete the data, whatever the command's outcome.
set -euo pipefail

find_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir; return
    fi
    for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    command -v initdb >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v initdb)")"
}

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "with-postgres: no PostgreSQL binaries found; installing Debian's postgresql package" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bindir=$(find_bindir)
    else
        echo "with-postgres: PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL 15+" >&2
        exit 1
    fi
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
datadir=$(mktemp -d /tmp/aitrader-pg.XXXXXX)
run_as=()
if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: use the postgres system user (created if missing).
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$datadir"
    run_as=(runuser -u postgres --)
fi

cleanup() {
    "${run_as[@]}" "$bindir/pg_ctl" -D "$datadir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$datadir"
}
trap cleanup EXIT INT TERM

"${run_as[@]}" "$bindir/initdb" -D "$datadir/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${run_as[@]}" "$bindir/pg_ctl" -D "$datadir/data" -l "$datadir/server.log" -w -t 60 \
    -o "-p $port -k $datadir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres aitrader_test

export AITRADER_REQUIRE_POSTGRES=1
export AITRADER_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/aitrader_test"
export AITRADER_TEST_PG_BINDIR="$bindir"
export AITRADER_TEST_PG_DATADIR="$datadir/data"
export AITRADER_TEST_PG_PORT="$port"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
set +e
"$@"
status=$?
exit $status
