#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on loopback, starting them or (on a
# bare Debian machine, as root) installing them from Debian's packages.
# Idempotent: does nothing when both already answer.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

log() { printf '[services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null || \
  (command -v psql >/dev/null && psql -h "$PGHOST" -p "$PGPORT" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1); }

start_postgres() {
  if pg_up; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
    # A fresh install asks for passwords over TCP; this dev/CI set-up trusts loopback.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    done
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && return; sleep 1; done
  log "PostgreSQL did not come up on $PGHOST:$PGPORT"; exit 1
}

redis_up() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
  if redis_up; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/rscms.log
  for _ in $(seq 1 30); do redis_up && return; sleep 1; done
  log "Redis did not come up on 127.0.0.1:$REDIS_PORT"; exit 1
}

command -v pg_isready >/dev/null || command -v psql >/dev/null || apt_install postgresql postgresql-client
start_postgres
start_redis

# The database the server uses by default (tests make their own).
DB=${RSCMS_DB_NAME:-rscms}
if ! psql -h "$PGHOST" -p "$PGPORT" -U postgres -Atc "select 1 from pg_database where datname='$DB'" postgres | grep -q 1; then
  log "creating database $DB"
  psql -h "$PGHOST" -p "$PGPORT" -U postgres -qc "CREATE DATABASE \"$DB\"" postgres
fi
log "PostgreSQL and Redis are up"
