#!/usr/bin/env bash
# Install a pinned matrix-synapse into its own virtualenv (.synapse-venv) for the Matrix tests.
# Idempotent: does nothing when the pinned version is already installed. The Matrix tests need it:
# when Synapse cannot be installed this says why and exits 1, failing `make test` (never a silent skip).
set -u

SYNAPSE_VERSION="${SYNAPSE_VERSION:-1.163.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${SYNAPSE_VENV:-$ROOT/.synapse-venv}"
PYTHON="${PYTHON:-python3.11}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    PYTHON=python3
fi

fail() {
    echo "synapse setup: FAILED: could not install matrix-synapse $SYNAPSE_VERSION ($1)." \
        "The Matrix tests need it; fix the cause above and retry: bash tests/synapse/setup.sh" >&2
    exit 1
}

# Synapse loads GroomGuard's module (groomguard.adapters.matrix.synapse_module, standard library only) from
# this checkout: an editable install without dependencies, as docs/matrix.md tells admins to do.
module_from_here() {
    "$VENV/bin/python" -c "import sys, groomguard.adapters.matrix.synapse_module as m; sys.exit(not m.__file__.startswith('$ROOT/'))" 2>/dev/null
}
install_module() {
    module_from_here && return 0
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT" 2>&1 \
        | grep -v "^WARNING: Location" | tail -20 >&2
    module_from_here || fail "groomguard.adapters.matrix.synapse_module does not import in $VENV"
}

if [ -x "$VENV/bin/python" ] \
    && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('matrix-synapse') != '$SYNAPSE_VERSION')" 2>/dev/null; then
    echo "synapse setup: matrix-synapse $SYNAPSE_VERSION already in $VENV"
    install_module
    exit 0
fi


echo "synapse setup: installing matrix-synapse $SYNAPSE_VERSION into $VENV"
"$PYTHON" -m venv "$VENV" || fail "cannot create a virtualenv with $PYTHON"
log="$(mktemp)"
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "matrix-synapse==$SYNAPSE_VERSION" >"$log" 2>&1; then
    # pip's "Location ... is ignored" lines come from local find-links config: noise here.
    grep -v "^WARNING: Location" "$log" | tail -20 >&2
    rm -f "$log"
    rm -rf "$VENV"
    fail "pip install failed"
fi
rm -f "$log"
"$VENV/bin/python" -c "import synapse.app.homeserver" \
    || { rm -rf "$VENV"; fail "synapse does not import"; }
install_module
echo "synapse setup: done ($("$VENV/bin/python" -c 'import synapse; print(synapse.__version__)'))"
