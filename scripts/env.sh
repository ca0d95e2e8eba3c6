# shellcheck shell=bash
# Sourced by the other scripts in scripts/ (never executed on its own).
#
# Two toolchains live side by side on purpose:
#   native  rustup's stable cargo/rustc (~/.cargo/bin): precopy-core, migrate-native, fmt, clippy.
#           Builds into target/.
#   wasm    Debian's cargo/rustc 1.96 (/usr/bin, packages rustc-web cargo-web rust-web-src), which
#           rebuilds the standard library for wasm32-unknown-unknown with -Zbuild-std (rustup has no
#           wasm32 std on these machines). Builds into target/wasm/ so the two never clobber each
#           other's artefacts.
#
# Convention:
#   native_env   call once in a script that builds native crates (also the default state after
#                sourcing this file: nothing wasm-related is exported).
#   wasm_env     call INSIDE A SUBSHELL, e.g. `( wasm_env; cargo build --target wasm32-unknown-unknown )`
#                or `wasm_run cargo ...`; it prepends /usr/bin and exports the build-std settings, which
#                must never leak into native builds. There is deliberately no .cargo/config.toml with
#                build-std in the repository for the same reason.
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

# Native builds: rustup's proxies first (if rustup is installed), nothing wasm-specific set.
native_env() {
    if [[ -d "$PRECOPY_RUSTUP_BIN" ]]; then
        PATH="$PRECOPY_RUSTUP_BIN:$(_precopy_path_without "$PRECOPY_RUSTUP_BIN" "$PATH")"
        export PATH
    fi
    unset RUSTC_BOOTSTRAP CARGO_UNSTABLE_BUILD_STD CARGO_TARGET_DIR RUSTC RUSTDOC \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER
}

# Wasm builds: Debian's cargo/rustc 1.96 first, build-std, wasm-ld-19, wasm-bindgen-test-runner.
# Call only in a subshell (or use wasm_run).
wasm_env() {
    PATH="/usr/bin:$PRECOPY_TOOLS/bin:$PRECOPY_NPM_PREFIX/node_modules/.bin:$(_precopy_path_without /usr/bin "$PATH")"
    export PATH
    # Pin the compiler explicitly: a rustup proxy earlier in the caller's environment must not win.
    export RUSTC=/usr/bin/rustc
    export RUSTDOC=/usr/bin/rustdoc
    unset RUSTUP_TOOLCHAIN
    # Debian's compiler is a stable one; -Z flags (build-std) need this.
    export RUSTC_BOOTSTRAP=1
    export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    export CHROMEDRIVER=/usr/bin/chromedriver
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
