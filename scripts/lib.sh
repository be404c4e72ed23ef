# Shared helpers for scripts/*. Sourced, not run.

# Repository root, whatever the caller's working directory.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n==> %s\n' "$*"; }

# apt_install PKG... — installs Debian packages non-interactively (as root, or via sudo).
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "error: need root or sudo to install: $*" >&2; return 1; }
        sudo=(sudo)
    fi
    step "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Installed packages must not start their services (a system Dovecot, ClamAV's freshclam
    # reaching the internet): policy-rc.d says no to every start while apt runs (Debian's
    # invoke-rc.d policy interface), unless the machine already has one.
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added=1
    fi
    "${sudo[@]}" apt-get update -q </dev/null
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" </dev/null
    if [ "$added" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
}

# require_rust — the Rust toolchain (cargo) must be present; rustup is not downloaded.
require_rust() {
    if ! command -v cargo >/dev/null; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null || {
        echo "error: cargo not found; install the Rust toolchain (1.95 or newer) first" >&2
        return 1
    }
}

# ensure_build_deps — a C compiler and linker (rusqlite bundles SQLite's C source).
ensure_build_deps() {
    local missing=()
    command -v cc >/dev/null || missing+=(build-essential)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# write_starter_config BIN DEST — the starter config scripts/setup writes: bulwark.example.toml
# with this machine's name as hostname (or localhost when the name has no dot or the check
# refuses it). tests/e2e/test_first_five.py runs exactly this.
write_starter_config() {
    local bin="$1" dest="$2" host
    host="$(hostname -f 2>/dev/null || true)"
    case "$host" in *.*) ;; *) host="localhost" ;; esac
    sed "s/^hostname = .*/hostname = \"$host\"/" "$ROOT/bulwark.example.toml" > "$dest"
    if ! "$bin" config check "$dest" >/dev/null 2>&1; then
        sed 's/^hostname = .*/hostname = "localhost"/' "$ROOT/bulwark.example.toml" > "$dest"
    fi
}
