#!/usr/bin/env bash
# Prints the URL of a fresh PostgreSQL test database for `make test`, or fails (non-zero, the reason
# on stderr): PostgreSQL is part of the test suite, so a run without it must not pass quietly.
#
# With GUANACO_TEST_POSTGRES_URL already set, checks that database answers and prints its URL (a
# CI service, a shared server). Otherwise starts Debian's PostgreSQL here (installing it if needed;
# needs root) and recreates the database guanaco_test, owned by the role guanaco.
set -euo pipefail

fail() {
  echo "postgres-test-db.sh: $*" >&2
  exit 1
}

if [ -n "${GUANACO_TEST_POSTGRES_URL:-}" ]; then
  plain=${GUANACO_TEST_POSTGRES_URL/postgresql+psycopg:/postgresql:}
  psql "$plain" -qtAc "SELECT 1" >/dev/null 2>&1 \
    || fail "GUANACO_TEST_POSTGRES_URL is set but that database does not answer (check host, port, password)"
  echo "$GUANACO_TEST_POSTGRES_URL"
  exit 0
fi
[ "$EUID" -eq 0 ] || fail "starting PostgreSQL needs root; or set GUANACO_TEST_POSTGRES_URL to a database you can use"
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  out=$({ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } 2>&1) \
    || fail "PostgreSQL is not installed and apt-get could not install it: ${out:$(( ${#out} > 400 ? ${#out} - 400 : 0 ))}"
fi
version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$version" ] || fail "PostgreSQL is installed but no server version is found under /usr/lib/postgresql"
if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
  if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
    out=$(pg_createcluster "$version" main 2>&1) || fail "could not create a cluster: $out"
  fi
  out=$(pg_ctlcluster "$version" main start 2>&1) || fail "could not start PostgreSQL $version: $out"
fi
for _ in $(seq 30); do
  pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 || fail "PostgreSQL does not accept connections on 127.0.0.1:5432"
as_postgres() { su postgres -c "$1" 2>&1; }
if ! as_postgres "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='guanaco'\"" | grep -q 1; then
  out=$(as_postgres "psql -qc \"CREATE ROLE guanaco LOGIN PASSWORD 'guanaco' CREATEDB\"") \
    || fail "could not create the role guanaco: $out"
fi
out=$(as_postgres "dropdb --if-exists guanaco_test") || fail "could not drop the old guanaco_test: $out"
out=$(as_postgres "createdb -O guanaco guanaco_test") || fail "could not create guanaco_test: $out"
echo "postgresql+psycopg://guanaco:guanaco@127.0.0.1:5432/guanaco_test"
