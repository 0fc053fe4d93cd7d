# Sourced by the scripts: make sure .venv exists and has crossgate with the given extra.
# Usage: ensure_venv EXTRA   (serve | dev)
# Needs only Python >= 3.11 and pip. Reinstalls when pyproject.toml changed since the
# last install for that extra, so a pull that adds a dependency just works.

ensure_venv() {
    local extra="$1"
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "error: $python not found; install Python 3.11 or newer (or set PYTHON=...)" >&2
        exit 2
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            echo "error: crossgate needs Python >= 3.11, $python is $("$python" -V 2>&1)" >&2
            exit 2
        }
        echo "==> creating .venv with $("$python" -V 2>&1)"
        "$python" -m venv .venv
    fi
    local stamp=".venv/.crossgate-$extra"
    local want
    want="$(cat pyproject.toml | .venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "==> installing crossgate[$extra] into .venv"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
        echo "$want" > "$stamp"
    fi
}
