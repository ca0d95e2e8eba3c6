#!/usr/bin/env bash
# Idempotent set-up of everything the wasm front end needs on a Debian 12 machine that only has
# rustup's Rust toolchain (see docs in scripts/env.sh for the two-toolchain convention):
#   - Debian packages: rustc-web cargo-web rust-web-src (1.96, same version), lld-19 (wasm-ld-19),
#     chromium + chromium-driver (headless tests), hyperfine rsync socat (benchmarks / native tests)
#   - wasm-opt 132 from the npm package binaryen@132.0.0     -> $PRECOPY_TOOLS/npm
#   - wasm-bindgen-cli = the "=X.Y.Z" pin in Cargo.toml         -> $PRECOPY_TOOLS/bin
#   - trunk $TRUNK_VERSION (about 15 min to build on 2 cores)  -> $PRECOPY_TOOLS/bin
# Each step is skipped when already in place; a fully set-up machine passes through in well under
# a second. Run by scripts/serve, scripts/build-web and scripts/test.
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

TRUNK_VERSION="0.22.1"
BINARYEN_VERSION="132.0.0"
APT_PACKAGES=(rustc-web cargo-web rust-web-src lld-19 chromium chromium-driver hyperfine rsync socat)

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install Debian packages"
    SUDO=(sudo)
fi

mkdir -p "$PRECOPY_TOOLS"
# Serialise concurrent set-ups (e.g. scripts/serve started while scripts/test runs).
exec 9>"$PRECOPY_TOOLS/.setup.lock"
flock 9

# ---------------------------------------------------------------------------------------------
# Debian packages
apt_updated=0
apt_update_once() {
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        # Third-party sources that this network cannot reach only produce warnings; a real
        # problem shows up in the install that follows.
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
            log "warning: apt-get update reported errors; trying the install anyway"
        apt_updated=1
    fi
}
apt_install() {
    apt_update_once
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Use-Pty=0 "$@" </dev/null
}
pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii"* ]]
}
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    missing+=(nodejs npm)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
fi
# The standard library is rebuilt from rust-web-src by rustc-web: the three must match exactly.
v_rustc="$(pkg_version rustc-web)"
if [[ "$(pkg_version cargo-web)" != "$v_rustc" || "$(pkg_version rust-web-src)" != "$v_rustc" ]]; then
    apt_update_once
    cand="$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')"
    log "rustc-web/cargo-web/rust-web-src versions differ; aligning on $cand"
    apt_install "rustc-web=$cand" "cargo-web=$cand" "rust-web-src=$cand"
fi
[[ -x /usr/bin/cargo && -x /usr/bin/rustc && -x /usr/bin/wasm-ld-19 ]] ||
    die "Debian's cargo/rustc/wasm-ld-19 missing after install"
log "Debian packages ok (rustc-web $v_rustc)"

# ---------------------------------------------------------------------------------------------
# wasm-opt from npm's binaryen (Debian's binaryen 108 is too old for today's wasm)
binaryen_pkg="$PRECOPY_NPM_PREFIX/node_modules/binaryen/package.json"
have_binaryen=""
if [[ -f "$binaryen_pkg" && -x "$PRECOPY_NPM_PREFIX/node_modules/.bin/wasm-opt" ]]; then
    have_binaryen="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$binaryen_pkg" | head -n1)"
fi
if [[ "$have_binaryen" != "$BINARYEN_VERSION" ]]; then
    log "npm install binaryen@$BINARYEN_VERSION into $PRECOPY_NPM_PREFIX"
    mkdir -p "$PRECOPY_NPM_PREFIX"
    npm install --prefix "$PRECOPY_NPM_PREFIX" --no-audit --no-fund --loglevel=error \
        "binaryen@$BINARYEN_VERSION" </dev/null
    "$PRECOPY_NPM_PREFIX/node_modules/.bin/wasm-opt" --version | grep -q "version ${BINARYEN_VERSION%%.*}" ||
        die "wasm-opt from binaryen@$BINARYEN_VERSION does not report version ${BINARYEN_VERSION%%.*}"
fi
log "wasm-opt ok (binaryen $BINARYEN_VERSION)"

# ---------------------------------------------------------------------------------------------
# cargo install with Debian's cargo 1.96 (trunk 0.22 needs a newer compiler than rustup's stable),
# and none of the wasm build settings (build-std would apply to the host build). The build
# directory is kept under $PRECOPY_TOOLS/build until the install succeeds, so an interrupted
# install (trunk's last crate alone takes about 10 min) resumes where it stopped.
installed_something=0
debian_cargo_install() {
    env -u RUSTC_BOOTSTRAP -u CARGO_UNSTABLE_BUILD_STD -u RUSTUP_TOOLCHAIN \
        -u CARGO_BUILD_TARGET -u RUSTFLAGS \
        PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        CARGO_TARGET_DIR="$PRECOPY_TOOLS/build" \
        /usr/bin/cargo install --root "$PRECOPY_TOOLS" "$@" </dev/null
    installed_something=1
}
tool_version() { # tool_version BIN -> second word of `BIN --version`, or nothing
    [[ -x "$PRECOPY_TOOLS/bin/$1" ]] || return 0
    "$PRECOPY_TOOLS/bin/$1" --version 2>/dev/null | awk 'NR==1 {print $2}'
}

wbg_version="$(sed -n 's/^wasm-bindgen *= *"=\([0-9][0-9.]*\)".*/\1/p' "$PRECOPY_REPO_ROOT/Cargo.toml" | head -n1)"
[[ -n "$wbg_version" ]] ||
    die 'Cargo.toml must pin wasm-bindgen = "=X.Y.Z" in [workspace.dependencies]'
if [[ "$(tool_version wasm-bindgen)" != "$wbg_version" || ! -x "$PRECOPY_TOOLS/bin/wasm-bindgen-test-runner" ]]; then
    log "cargo install wasm-bindgen-cli $wbg_version (about 3 min)"
    # No --locked: it fails on a yanked dependency of the published lock file.
    debian_cargo_install --force wasm-bindgen-cli --version "$wbg_version"
fi
log "wasm-bindgen-cli ok ($wbg_version)"

if [[ "$(tool_version trunk)" != "$TRUNK_VERSION" ]]; then
    log "cargo install trunk $TRUNK_VERSION (about 10 min on 2 cores)"
    # trunk 0.22 declares rust-version 1.96.1, one patch above Debian's 1.96.0; it works.
    # Its own release profile (fat LTO, one codegen unit) makes the last crate a single 10+ min
    # step on 2 cores; a plain optimised build is plenty for a build tool and much quicker.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        debian_cargo_install --force trunk --version "$TRUNK_VERSION" --locked --ignore-rust-version
fi
log "trunk ok ($TRUNK_VERSION)"

if [[ $installed_something -eq 1 ]]; then
    # Everything is installed: the build directory (1-2 GB) is no longer needed.
    rm -rf "$PRECOPY_TOOLS/build"
fi
