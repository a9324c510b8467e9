#!/usr/bin/env bash
# Makes sure what the tests need is there: PostgreSQL at 127.0.0.1:5432 (database test) and
# Debian's chromium for the browser tests. Installs/starts only what is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null \
    | grep -q 1 || createdb -h 127.0.0.1 -U postgres test 2>/dev/null || true
  # The suite creates and drops a schema per test. Where autovacuum is off (CI machines), the
  # catalogs bloat run after run (pg_attribute: 264,000 dead rows to 535 live after a day) and
  # every new connection and statement slows: clear them first (well under a second).
  psql -h 127.0.0.1 -U postgres -d test -qc "VACUUM" 2>/dev/null || true
else
  echo "scripts/services.sh: PostgreSQL is not reachable at 127.0.0.1:5432" >&2
fi
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
if [ -n "$missing" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) \
    >/dev/null 2>&1 || echo "scripts/services.sh: could not install:$missing" >&2
fi
exit 0
