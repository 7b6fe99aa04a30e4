#!/usr/bin/env bash
# Install the PostgreSQL server from Debian's packages for tests/postgres (idempotent; never fails the build).
set -u
have_server() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
if have_server; then
    echo "postgres: server binaries present"
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres: server not installed and cannot apt-get here (need root + apt); PostgreSQL tests will be skipped"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; }; then
    echo "postgres: installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
else
    echo "postgres: apt-get install postgresql failed; PostgreSQL tests will be skipped"
fi
exit 0
