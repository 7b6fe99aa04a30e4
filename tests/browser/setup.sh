#!/usr/bin/env bash
# Install headless Chromium and its driver from Debian's packages for tests/browser (idempotent). The
# browser tests need them: when they cannot be installed this says why and exits 1, failing `make test`.
# Nothing is downloaded outside the package manager (selenium uses the system chromedriver).
set -u
have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
fail() {
    echo "browser: FAILED: $1. The web view tests need Debian's chromium and chromium-driver;" \
        "install them (apt-get install chromium chromium-driver) and retry: bash tests/browser/setup.sh" >&2
    exit 1
}
if have_browser; then
    echo "browser: $(chromium --version 2>/dev/null | head -1) with $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "chromium not installed and cannot apt-get here (need root + apt)"
fi
export DEBIAN_FRONTEND=noninteractive
packages="chromium chromium-driver"
if apt-get install -y -q --no-install-recommends $packages >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $packages >/dev/null 2>&1; }; then
    have_browser || fail "apt-get installed $packages but chromium or chromedriver is still missing"
    echo "browser: installed $(chromium --version 2>/dev/null | head -1)"
else
    fail "apt-get install $packages failed"
fi
