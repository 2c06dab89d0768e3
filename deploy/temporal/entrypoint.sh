#!/bin/bash
# Sets up (or upgrades) Temporal's schema in PostgreSQL, starts the server,
# makes sure the namespace exists, then waits on the server. Every step is
# idempotent: a restarted container, or a second server, finds it done.
set -euo pipefail
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is not set}" "${POSTGRES_USER:?POSTGRES_USER is not set}" "${POSTGRES_PWD:?POSTGRES_PWD is not set}"
export DB=${DB:-postgres12} DB_PORT=${DB_PORT:-5432}
export POSTGRES_PORT=$DB_PORT BIND_ON_IP=${BIND_ON_IP:-0.0.0.0}
export TEMPORAL_BROADCAST_ADDRESS=${TEMPORAL_BROADCAST_ADDRESS:-$(hostname -i | awk '{print $1}')}
export DYNAMIC_CONFIG_FILE_PATH=${DYNAMIC_CONFIG_FILE_PATH:-/etc/temporal/config/dynamicconfig/docker.yaml}
export SQL_PASSWORD=$POSTGRES_PWD LOG_LEVEL=${LOG_LEVEL:-warn}
namespace=${DEFAULT_NAMESPACE:-default}
schema=/etc/temporal/schema/postgresql/v12
sqltool() { temporal-sql-tool --quiet --plugin "$DB" --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"; }

# PostgreSQL may be starting (or restarting): wait for it, a minute at most.
for i in $(seq 60); do
  sqltool --db temporal create-database >/dev/null 2>&1 && break
  [ "$i" -eq 60 ] && { echo "temporal: PostgreSQL at $POSTGRES_SEEDS:$DB_PORT does not answer" >&2; exit 1; }
  sleep 1
done
for db in temporal:temporal temporal_visibility:visibility; do
  name=${db%%:*} dir=$schema/${db##*:}/versioned
  sqltool --db "$name" create-database >/dev/null
  sqltool --db "$name" setup-schema -v 0.0 >/dev/null
  sqltool --db "$name" update-schema -d "$dir" >/dev/null
done
echo "temporal: schema up to date"

temporal-server --root /etc/temporal --config config --env docker start &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' TERM INT
addr=$TEMPORAL_BROADCAST_ADDRESS:7233
until temporal operator cluster health --address "$addr" >/dev/null 2>&1; do
  kill -0 $server 2>/dev/null || { wait $server; exit $?; }
  sleep 1
done
temporal operator namespace describe -n "$namespace" --address "$addr" >/dev/null 2>&1 ||
  temporal operator namespace create -n "$namespace" --retention "${NAMESPACE_RETENTION:-720h}" --address "$addr" >/dev/null 2>&1 ||
  temporal operator namespace describe -n "$namespace" --address "$addr" >/dev/null
echo "temporal: serving namespace $namespace on $addr"
wait $server
