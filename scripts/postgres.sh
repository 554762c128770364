#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from Debian's binaries.
#
#   eval "$(scripts/postgres.sh start)"   # starts one; prints export lines for
#                                         #   HOLDPOINT_TEST_POSTGRES_URL (superuser, trust auth,
#                                         #   127.0.0.1 on a free port) and HOLDPOINT_TEST_POSTGRES_DIR
#   scripts/postgres.sh stop "$HOLDPOINT_TEST_POSTGRES_DIR"   # stops it and deletes its files
#
# The server lives in a temporary directory (data + socket + log), listens only on 127.0.0.1 and
# trusts local connections: it is for tests, never for data. initdb refuses to run as root, so as
# root the server runs as the `postgres` OS user (created by Debian's package) or, if that is
# missing, a dedicated system user `holdpoint-pg` created here. Installs Debian's `postgresql` when
# no server binaries are found. Tests create one database per test (see holdpoint-store's
# `testing` feature), so one server serves a whole test run.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi
}

cmd_start() {
  local bindir
  if ! bindir=$(find_bindir); then
    log "installing postgresql from Debian"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir=$(find_bindir) || { log "no PostgreSQL binaries after install"; exit 1; }
  fi
  PGUSER_OS=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then
      PGUSER_OS=postgres
    else
      id holdpoint-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin holdpoint-pg
      PGUSER_OS=holdpoint-pg
    fi
  fi
  local dir port
  dir=$(mktemp -d /tmp/holdpoint-pg.XXXXXX)
  chmod 700 "$dir"
  [ "$(id -u)" = 0 ] && chown "$PGUSER_OS" "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # fsync off: a test server; max_connections for parallel tests, each with a small pool.
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "$bindir" >"$dir/bindir"
  echo "$PGUSER_OS" >"$dir/osuser"
  log "PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port in $dir"
  echo "export HOLDPOINT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
  echo "export HOLDPOINT_TEST_POSTGRES_DIR=$dir"
}

cmd_stop() {
  local dir=${1:-${HOLDPOINT_TEST_POSTGRES_DIR:-}}
  case "$dir" in
    /tmp/holdpoint-pg.*) ;;
    *) log "stop: not a directory made by this script: '$dir'"; exit 1 ;;
  esac
  [ -d "$dir" ] || exit 0
  PGUSER_OS=$(cat "$dir/osuser" 2>/dev/null || id -un)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
esac
