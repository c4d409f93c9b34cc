#!/usr/bin/env bash
# Starts a local PostgreSQL (Debian's package) and prints a URL for a throwaway test database.
# Used by `make test` so the store is tested on PostgreSQL as well as SQLite. Prints nothing and
# exits 0 when PostgreSQL cannot be installed or started here (the PostgreSQL tests then skip).
set -u
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 || exit 0
fi
version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$version" ] || exit 0
if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
  pg_lsclusters -h | grep -q . || pg_createcluster "$version" main >/dev/null 2>&1
  pg_ctlcluster "$version" main start >/dev/null 2>&1 || exit 0
fi
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='guanaco'\"" 2>/dev/null | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE guanaco LOGIN PASSWORD 'guanaco' CREATEDB\"" >/dev/null 2>&1
su postgres -c "dropdb --if-exists guanaco_test" >/dev/null 2>&1
su postgres -c "createdb -O guanaco guanaco_test" >/dev/null 2>&1 || exit 0
echo "postgresql+psycopg://guanaco:guanaco@127.0.0.1:5432/guanaco_test"
