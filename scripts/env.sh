# shellcheck shell=bash
# Sourced by the other scripts in scripts/ (never executed on its own).
#
# Native builds (precopy-core, migrate-native, fmt, clippy) use rustup's stable cargo/rustc
# (~/.cargo/bin) and build into target/.
#
# The wasm32 build takes one of two roads, chosen by what works on this machine
# (scripts/setup-toolchain.sh decides and prints the choice; `precopy_wasm_road` below reports it):
#   rustup  rustup's own wasm32-unknown-unknown target, installed or added by `rustup target add`:
#           the usual way on any system with rustup (Ubuntu, Fedora, Arch, macOS, ...).
#   debian  Debian 12's cargo/rustc 1.96 (/usr/bin, packages rustc-web cargo-web rust-web-src),
#           which rebuilds the standard library for wasm32 with -Zbuild-std and links with
#           wasm-ld-19: the fallback for machines where rustup cannot download the target.
# PRECOPY_WASM_ROAD=rustup|debian forces one road (default: auto). Either road builds into
# target/wasm/, so native and wasm artefacts never clobber each other.
#
# Convention:
#   native_env   call once in a script that builds native crates (also the default state after
#                sourcing this file: nothing wasm-related is exported).
#   wasm_env     call INSIDE A SUBSHELL, e.g. `( wasm_env; cargo build --target wasm32-unknown-unknown )`
#                or `wasm_run cargo ...`; on the debian road it prepends /usr/bin and exports the
#                build-std settings, which must never leak into native builds. There is
#                deliberately no .cargo/config.toml with build-std in the repository for that reason.
#   wasm_run CMD...  runs one command with the wasm environment, in a subshell.

PRECOPY_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PRECOPY_REPO_ROOT

# Where the locally built tools (trunk, wasm-bindgen, wasm-bindgen-test-runner) and the npm binaryen
# are cached between runs. Outside the work tree so a fresh clone (CI) reuses them.
: "${PRECOPY_TOOLS:=${XDG_CACHE_HOME:-$HOME/.cache}/precopy-tools}"
export PRECOPY_TOOLS
export PRECOPY_NPM_PREFIX="$PRECOPY_TOOLS/npm"
export PRECOPY_WASM_TARGET_DIR="$PRECOPY_REPO_ROOT/target/wasm"

# rustup's bin dir (may be absent on a machine without rustup).
PRECOPY_RUSTUP_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"

# Which system this is (the ID of os-release; "darwin" on macOS). Overridable for tests.
: "${PRECOPY_OS_RELEASE:=/etc/os-release}"

# Network steps retry with backoff: cargo's own retries (each with a growing delay), npm's fetch
# retries, rustup's download retries. apt's are set where apt runs (setup-toolchain.sh), and
# precopy_retry below wraps whole commands. A user's own settings win.
export CARGO_NET_RETRY="${CARGO_NET_RETRY:-10}"
export npm_config_fetch_retries="${npm_config_fetch_retries:-5}"
export npm_config_fetch_retry_mintimeout="${npm_config_fetch_retry_mintimeout:-10000}"
export npm_config_fetch_retry_maxtimeout="${npm_config_fetch_retry_maxtimeout:-120000}"
export RUSTUP_MAX_RETRIES="${RUSTUP_MAX_RETRIES:-5}"

# Remove one directory from a PATH-like string.
_precopy_path_without() {
    local dir="$1" path="$2" out="" part
    local IFS=:
    for part in $path; do
        [[ "$part" == "$dir" || -z "$part" ]] && continue
        out="${out:+$out:}$part"
    done
    printf '%s' "$out"
}

# Tools cache is useful to both worlds (trunk, wasm-bindgen, wasm-opt); add it once, at the end.
case ":$PATH:" in
*":$PRECOPY_TOOLS/bin:"*) ;;
*) PATH="$PATH:$PRECOPY_TOOLS/bin" ;;
esac
case ":$PATH:" in
*":$PRECOPY_NPM_PREFIX/node_modules/.bin:"*) ;;
*) PATH="$PATH:$PRECOPY_NPM_PREFIX/node_modules/.bin" ;;
esac
export PATH

# precopy_retry [--if-output REGEX] CMD...: run CMD; when it fails, run it again after 10, 30 and
# 90 s (PRECOPY_RETRY_DELAYS). For network steps: a registry that times out for a minute should
# not end a 20-minute set-up. With --if-output, only a failure whose output matches REGEX is
# retried (a compile error is not worth three more tries). Cargo and npm keep what they already
# downloaded or built, so a retry resumes rather than restarts.
precopy_retry() {
    local pattern="" attempt=0 rc tmp
    local -a delays
    if [[ "${1:-}" == --if-output ]]; then
        pattern="$2"
        shift 2
    fi
    read -ra delays <<<"${PRECOPY_RETRY_DELAYS-10 30 90}"
    tmp="$(mktemp -d)"
    while true; do
        rc=0
        if [[ -n "$pattern" ]]; then
            # Shown and kept: whether to retry depends on what the failure said.
            {
                "$@" || rc=$?
                echo "$rc" >"$tmp/rc"
            } 2>&1 | tee "$tmp/out"
            rc="$(cat "$tmp/rc")"
        else
            "$@" || rc=$?
        fi
        if [[ $rc -eq 0 ]]; then
            rm -rf "$tmp"
            return 0
        fi
        if [[ -n "$pattern" ]] && ! grep -Eq "$pattern" "$tmp/out"; then
            printf 'retry: not retried, the failure does not look like a network error (exit %d): %s\n' \
                "$rc" "$*" >&2
            rm -rf "$tmp"
            return "$rc"
        fi
        if [[ $attempt -ge ${#delays[@]} ]]; then
            printf 'retry: giving up after %d attempts (exit %d): %s\n' $((attempt + 1)) "$rc" "$*" >&2
            rm -rf "$tmp"
            return "$rc"
        fi
        printf 'retry: attempt %d failed (exit %d); trying again in %ss: %s\n' \
            $((attempt + 1)) "$rc" "${delays[attempt]}" "$*" >&2
        sleep "${delays[attempt]}"
        attempt=$((attempt + 1))
    done
}
# What cargo and curl say when the network, not the code, failed (for precopy_retry --if-output).
# shellcheck disable=SC2034 # used by the scripts that source this file
PRECOPY_NET_ERRORS='failed to download|download of .* failed|failed to get .* as a dependency|failed to fetch|failed to query replaced source|failed to load source|spurious network error|Couldn.t (resolve|connect)|Could not resolve|Timeout was reached|timed out|Connection (reset|refused)|SSL|Failure when receiving|error sending request|\[[0-9]+\] [A-Z]'

# ---------------------------------------------------------------------------------------------
# The wasm32 road

# Prints the rustup executable (on PATH, or in ~/.cargo/bin when that is not on PATH); fails if none.
precopy_rustup() {
    command -v rustup 2>/dev/null && return 0
    [[ -x "$PRECOPY_RUSTUP_BIN/rustup" ]] && printf '%s\n' "$PRECOPY_RUSTUP_BIN/rustup"
}

# True when rustup's toolchain for this repository has the wasm32-unknown-unknown standard library.
precopy_rustup_has_wasm32() {
    local rustup installed
    rustup="$(precopy_rustup)" || return 1
    # Captured, not piped into grep -q: an early grep exit would fail the pipe under pipefail.
    installed="$(cd "$PRECOPY_REPO_ROOT" && "$rustup" target list --installed 2>/dev/null)" || return 1
    [[ $'\n'"$installed"$'\n' == *$'\n'wasm32-unknown-unknown$'\n'* ]]
}

# The system's os-release ID (debian, ubuntu, fedora, arch, ...), "darwin" on macOS.
precopy_os_id() {
    (
        ID=""
        # shellcheck disable=SC1090
        [[ -r "$PRECOPY_OS_RELEASE" ]] && source "$PRECOPY_OS_RELEASE"
        # uname's Darwin -> darwin (tr, not ${ID,,}: macOS's own bash is 3.2).
        [[ -n "$ID" ]] || ID="$(uname -s | tr '[:upper:]' '[:lower:]')"
        printf '%s\n' "$ID"
    )
}

# True on Debian itself (rustc-web is a Debian package; Ubuntu and others do not have it).
precopy_is_debian() {
    command -v dpkg >/dev/null 2>&1 && [[ "$(precopy_os_id)" == debian ]]
}

# Prints the road the wasm build takes now: rustup, debian or none. Never installs or downloads
# anything (scripts/setup-toolchain.sh is what adds rustup's target or Debian's packages).
precopy_wasm_road() {
    case "${PRECOPY_WASM_ROAD:-auto}" in
    rustup | debian)
        printf '%s\n' "$PRECOPY_WASM_ROAD"
        return 0
        ;;
    auto) ;;
    *)
        printf 'PRECOPY_WASM_ROAD=%s: expected rustup, debian or auto\n' "$PRECOPY_WASM_ROAD" >&2
        return 2
        ;;
    esac
    if precopy_rustup_has_wasm32; then
        echo rustup
    elif precopy_is_debian; then
        echo debian
    else
        echo none
    fi
}

# ---------------------------------------------------------------------------------------------
# Build environments

# Native builds: rustup's proxies first (if rustup is installed), nothing wasm-specific set.
native_env() {
    if [[ -d "$PRECOPY_RUSTUP_BIN" ]]; then
        PATH="$PRECOPY_RUSTUP_BIN:$(_precopy_path_without "$PRECOPY_RUSTUP_BIN" "$PATH")"
        export PATH
    fi
    unset RUSTC_BOOTSTRAP CARGO_UNSTABLE_BUILD_STD CARGO_TARGET_DIR RUSTC RUSTDOC \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER
}

# Wasm builds on the road precopy_wasm_road reports. Call only in a subshell (or use wasm_run).
wasm_env() {
    local road rustup_bin
    road="$(precopy_wasm_road)" || return 1
    case "$road" in
    rustup)
        # rustup's proxies first, so that Trunk's `cargo` is rustup's (with the wasm32 target).
        rustup_bin="$(dirname "$(precopy_rustup)")"
        PATH="$rustup_bin:$PRECOPY_TOOLS/bin:$PRECOPY_NPM_PREFIX/node_modules/.bin:$(_precopy_path_without "$rustup_bin" "$PATH")"
        unset RUSTC RUSTDOC RUSTC_BOOTSTRAP CARGO_UNSTABLE_BUILD_STD \
            CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER
        ;;
    debian)
        # Debian's cargo/rustc 1.96 first (Trunk runs whichever cargo is first on PATH).
        PATH="/usr/bin:$PRECOPY_TOOLS/bin:$PRECOPY_NPM_PREFIX/node_modules/.bin:$(_precopy_path_without /usr/bin "$PATH")"
        # Pin the compiler explicitly: a rustup proxy earlier in the caller's environment must not win.
        export RUSTC=/usr/bin/rustc
        export RUSTDOC=/usr/bin/rustdoc
        unset RUSTUP_TOOLCHAIN
        # Debian's compiler is a stable one; -Z flags (build-std) need this.
        export RUSTC_BOOTSTRAP=1
        export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
        # The rust-lld link Debian ships is broken; lld-19's wasm-ld works.
        export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19
        ;;
    *)
        echo "wasm_env: no wasm32 toolchain on this machine: run scripts/setup-toolchain.sh" >&2
        return 1
        ;;
    esac
    export PATH PRECOPY_WASM_ROAD_IN_USE="$road"
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    # wasm-bindgen-test-runner drives the browser through chromedriver (a user's CHROMEDRIVER wins).
    if [[ -z "${CHROMEDRIVER:-}" ]]; then
        if CHROMEDRIVER="$(command -v chromedriver 2>/dev/null)"; then
            export CHROMEDRIVER
        else
            unset CHROMEDRIVER
        fi
    fi
    export CARGO_TARGET_DIR="$PRECOPY_WASM_TARGET_DIR"
    # Trunk: never look for updates or download tools.
    export TRUNK_SKIP_VERSION_CHECK=true
    export TRUNK_OFFLINE=true
}

wasm_run() {
    (
        wasm_env
        "$@"
    )
}

# Print a stage banner.
banner() {
    printf '\n==================== %s ====================\n' "$*"
}
