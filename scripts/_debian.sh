# Sourced by the scripts: make sure Debian packages the venv's builds need are installed.
# Usage: ensure_debian PKG...   (e.g. apache2-dev, whose apxs the mod_wsgi build needs)
# Installs only what `dpkg-query` reports missing, with apt-get as root; otherwise says
# what to run and exits 2.

ensure_debian() {
    local missing=() pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        if [ "$status" != "install ok installed" ]; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
        echo "error: missing system packages: ${missing[*]}; this is no Debian system" \
            "(no apt-get): install their equivalents by hand" >&2
        exit 2
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing Debian packages: ${missing[*]}; as root, run:" >&2
        echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 2
    fi
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}
