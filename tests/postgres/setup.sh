#!/usr/bin/env bash
# Install the PostgreSQL server from Debian's packages for tests/postgres (idempotent). The PostgreSQL
# tests need it: when it cannot be installed this says why and exits 1, failing `make test`.
set -u
have_server() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
fail() {
    echo "postgres: FAILED: $1. The PostgreSQL tests need the server binaries (initdb, pg_ctl);" \
        "install them (apt-get install postgresql) and retry: bash tests/postgres/setup.sh" >&2
    exit 1
}
if have_server; then
    echo "postgres: server binaries present"
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "server not installed and cannot apt-get here (need root + apt)"
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; }; then
    have_server || fail "apt-get installed postgresql but initdb is still missing"
    echo "postgres: installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
else
    fail "apt-get install postgresql failed"
fi
