#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the distributed-sweep tests.
# Source it: it exports CARTPOLE_DQN_TEST_PG_URL and stops the cluster when the shell exits.
# Installs Debian's postgresql package first if no server binaries are found.
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  echo "installing PostgreSQL (Debian package postgresql)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(pg_bin)"
PG_USER=postgres
id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
PG_DATA="$(mktemp -d /tmp/cartpole-dqn-pg.XXXXXX)"
chown "$PG_USER" "$PG_DATA"
PG_PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }
as_pg "$PG_BIN/initdb" -D "$PG_DATA/data" --auth=trust --username="$PG_USER" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=200" start >/dev/null
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" optuna_test
export CARTPOLE_DQN_TEST_PG_URL="postgresql+psycopg2://$PG_USER@127.0.0.1:$PG_PORT/optuna_test"
# What the restart test needs to stop and start this very server (as the server's user).
export CARTPOLE_DQN_TEST_PG_BIN="$PG_BIN" CARTPOLE_DQN_TEST_PG_DATA="$PG_DATA" CARTPOLE_DQN_TEST_PG_PORT="$PG_PORT"
export CARTPOLE_DQN_TEST_PG_USER="$PG_USER"
stop_postgres() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PG_DATA"; }
trap stop_postgres EXIT
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data in $PG_DATA)"
