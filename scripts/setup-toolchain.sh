#!/usr/bin/env bash
# Idempotent set-up of what the wasm front end needs, on the road that works on this machine
# (scripts/env.sh describes both):
#   rustup  rustup's own wasm32-unknown-unknown target, when installed or `rustup target add` works
#   debian  else, on Debian 12: rustc-web cargo-web rust-web-src (same version) and lld-19
#   none    else: a message naming what to install on this system, and exit 1
# then, on either road, what the caller needs (--for, each level includes the one before):
#   serve   wasm-bindgen-cli (= the "=X.Y.Z" pin in Cargo.toml) and trunk $TRUNK_VERSION, built
#           once into $PRECOPY_TOOLS/bin (the slow part of a first run)
#   build   + wasm-opt 132 from the npm package binaryen@132.0.0 (release builds) -> $PRECOPY_TOOLS/npm
#   test    + chromium and chromedriver (browser tests), hyperfine rsync socat (the default)
#
#   scripts/setup-toolchain.sh [--for serve|build|test]
#   scripts/setup-toolchain.sh --road     decide the road only (adding rustup's target if that is
#                                         what it takes), print it, install nothing else
#
# Each step is skipped when already in place; a set-up machine passes through in about a second.
# Root is needed only for apt-get, and all of it happens first, announced before sudo can ask.
# Network steps retry with backoff; an interrupted run resumes where it stopped (apt and dpkg
# finish their work, npm reinstalls, cargo keeps its build directory until the tools are in).
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

TRUNK_VERSION="0.22.1"
BINARYEN_VERSION="132.0.0"
WASM=wasm32-unknown-unknown

log() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: ERROR: %s\n' "$1" >&2
    shift
    [[ $# -eq 0 ]] || printf '  %s\n' "$@" >&2
    exit 1
}

level="test"
road_only=0
while [[ $# -gt 0 ]]; do
    case "$1" in
    --for)
        level="${2:-}"
        shift 2 || die "--for needs serve, build or test"
        ;;
    --for=*)
        level="${1#--for=}"
        shift
        ;;
    --road)
        road_only=1
        shift
        ;;
    *) die "unknown argument $1 (usage: scripts/setup-toolchain.sh [--for serve|build|test] [--road])" ;;
    esac
done
case "$level" in
serve) rank=1 ;;
build) rank=2 ;;
test) rank=3 ;;
*) die "--for $level: expected serve, build or test" ;;
esac

mkdir -p "$PRECOPY_TOOLS"
# Serialise concurrent set-ups (e.g. scripts/serve started while scripts/test runs); macOS has no
# flock(1), and goes without.
exec 9>"$PRECOPY_TOOLS/.setup.lock"
if command -v flock >/dev/null; then
    flock 9
fi

# ---------------------------------------------------------------------------------------------
# The road

# What to type on this system to get rustup, for the message when no road works.
rustup_install_hint() {
    local id like
    id="$(precopy_os_id)"
    like="$(
        # shellcheck disable=SC1090
        [[ -r "$PRECOPY_OS_RELEASE" ]] && source "$PRECOPY_OS_RELEASE"
        printf '%s' "${ID_LIKE:-}"
    )"
    case " $id $like " in
    *" darwin "*) echo "brew install rustup && rustup-init   (or the script from https://rustup.rs)" ;;
    *" ubuntu "*) echo "sudo apt install rustup   (Ubuntu 24.04 and later; or the script from https://rustup.rs)" ;;
    *" fedora "* | *" rhel "* | *" centos "*) echo "sudo dnf install rustup && rustup-init" ;;
    *" arch "*) echo "sudo pacman -S rustup && rustup default stable" ;;
    *" suse "* | *" opensuse "*) echo "sudo zypper install rustup && rustup default stable" ;;
    *" alpine "*) echo "sudo apk add rustup && rustup-init" ;;
    *) echo "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   (https://rustup.rs)" ;;
    esac
}

# A failed `rustup target add` is not retried for a day (it may take a while to fail, and the
# Debian road works meanwhile); deleting the file retries at once.
rustup_failed_marker="$PRECOPY_TOOLS/rustup-wasm32-add-failed"
rustup_failed_recently() {
    [[ -n "$(find "$rustup_failed_marker" -mmin -1440 2>/dev/null)" ]]
}

# Sets ROAD (rustup or debian) and ROAD_WHY, or exits with a message naming what to install.
decide_road() {
    local wanted="${PRECOPY_WASM_ROAD:-auto}" rustup why_not=""
    case "$wanted" in
    auto | rustup | debian) ;;
    *) die "PRECOPY_WASM_ROAD=$wanted: expected rustup, debian or auto" ;;
    esac
    if [[ "$wanted" == debian ]]; then
        why_not="PRECOPY_WASM_ROAD=debian"
    elif ! rustup="$(precopy_rustup)"; then
        why_not="no rustup on this machine"
    elif precopy_rustup_has_wasm32; then
        ROAD=rustup ROAD_WHY="rustup's $WASM target is installed"
        return 0
    elif [[ "$wanted" == auto ]] && rustup_failed_recently; then
        why_not="\`rustup target add $WASM\` failed less than a day ago; retried after a day, or now if you delete $rustup_failed_marker"
    else
        log "rustup target add $WASM"
        if (cd "$PRECOPY_REPO_ROOT" && "$rustup" target add "$WASM") </dev/null; then
            rm -f "$rustup_failed_marker"
            ROAD=rustup ROAD_WHY="added rustup's $WASM target"
            return 0
        fi
        touch "$rustup_failed_marker"
        why_not="rustup could not add its $WASM target"
    fi
    [[ "$wanted" != rustup ]] || die "PRECOPY_WASM_ROAD=rustup, but $why_not"

    if precopy_is_debian; then
        ROAD=debian ROAD_WHY="Debian's rustc-web and -Zbuild-std, because $why_not"
        return 0
    fi
    [[ "$wanted" != debian ]] ||
        die "PRECOPY_WASM_ROAD=debian, but this is not Debian (dpkg, and ID=debian in $PRECOPY_OS_RELEASE)"
    if [[ -n "${rustup:-}" ]]; then
        die "cannot build for $WASM here: rustup is installed, but \`rustup target add $WASM\` failed (see above)." \
            "Check the network, or a mirror in RUSTUP_DIST_SERVER, then run this again." \
            "(Only on Debian 12 is there a fallback, Debian's rustc-web packages.)"
    fi
    die "cannot build for $WASM here: there is no rustup on this system." \
        "Install rustup and its wasm32 target, then run this again:" \
        "    $(rustup_install_hint)" \
        "    rustup target add $WASM"
}

decide_road
log "wasm32 road: $ROAD ($ROAD_WHY)"
if [[ $road_only -eq 1 ]]; then
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# System packages: everything that needs root, first and at once.

APT_OPTS=(-o Acquire::Retries=5 -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
apt_wanted=()
not_found=()
if [[ "$ROAD" == debian ]]; then
    apt_wanted+=(rustc-web cargo-web rust-web-src lld-19)
fi
if [[ $rank -ge 2 ]] && { ! command -v npm >/dev/null || ! command -v node >/dev/null; }; then
    if precopy_is_debian; then apt_wanted+=(nodejs npm); else not_found+=("node and npm (Node.js)"); fi
fi
if [[ $rank -ge 3 ]]; then
    if precopy_is_debian; then
        apt_wanted+=(chromium chromium-driver hyperfine rsync socat)
    else
        # Elsewhere only check: the names of these packages differ from system to system.
        # The browser tests' own finder ($CHROME, $CHROMIUM, then PATH and the usual places).
        if command -v node >/dev/null && ! node "$PRECOPY_REPO_ROOT/tests/e2e/browser.mjs" >/dev/null 2>&1; then
            not_found+=("Chrome or Chromium (or set CHROME=/path/to/it)")
        fi
        [[ -n "${CHROMEDRIVER:-}" ]] || command -v chromedriver >/dev/null ||
            not_found+=("chromedriver, the same version as the browser (or set CHROMEDRIVER)")
        for c in hyperfine rsync socat; do
            command -v "$c" >/dev/null || not_found+=("$c")
        done
    fi
fi
if [[ ${#not_found[@]} -gt 0 ]]; then
    die "scripts/${level/build/build-web} needs these, not found on this system; install them with its package manager:" \
        "${not_found[@]}"
fi

pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii"* ]]
}
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

apt_missing=()
# (The ${a[@]+...} form: an empty array is "unbound" to set -u in bash before 4.4, e.g. macOS's.)
for p in ${apt_wanted[@]+"${apt_wanted[@]}"}; do
    pkg_installed "$p" || apt_missing+=("$p")
done
# The standard library is rebuilt from rust-web-src by rustc-web: the three must match exactly.
misaligned=0
if [[ "$ROAD" == debian && ${#apt_missing[@]} -eq 0 ]]; then
    v_rustc="$(pkg_version rustc-web)"
    if [[ "$(pkg_version cargo-web)" != "$v_rustc" || "$(pkg_version rust-web-src)" != "$v_rustc" ]]; then
        misaligned=1
    fi
fi
# A dpkg run that was interrupted must be finished before apt-get installs anything.
dpkg_unfinished=0
if command -v dpkg >/dev/null && [[ -n "$(dpkg --audit 2>/dev/null)" ]]; then
    dpkg_unfinished=1
fi

SUDO=()
become_root() { # become_root COMMAND: say why root is needed before sudo may ask for a password
    [[ $(id -u) -ne 0 ]] || return 0
    command -v sudo >/dev/null ||
        die "root is needed to run \`$1\` (Debian packages), and there is no sudo. As root, run:" \
            "$1" "then run this again."
    log "root is needed to run \`$1\` (Debian packages; nothing after this needs root): using sudo"
    if ! sudo -n true 2>/dev/null; then
        [[ -t 0 ]] ||
            die "sudo needs a password and there is no terminal to ask on. Run:" "sudo $1" \
                "then run this again."
        log "sudo asks for your password now, once"
        sudo -v
    fi
    SUDO=(sudo)
}

if [[ ${#apt_missing[@]} -gt 0 || $misaligned -eq 1 || $dpkg_unfinished -eq 1 ]]; then
    become_root "apt-get install -y ${apt_missing[*]:-rustc-web cargo-web rust-web-src}"
    if [[ $dpkg_unfinished -eq 1 ]]; then
        log "dpkg --configure -a (finishing an interrupted install)"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a </dev/null
    fi
    log "apt-get update"
    # Third-party sources that this network cannot reach only produce warnings; a real problem
    # shows up in the install that follows.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -qq ||
        log "warning: apt-get update reported errors; trying the install anyway"
    apt_install() {
        log "apt-get install $*"
        precopy_retry "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq "${APT_OPTS[@]}" "$@" </dev/null
    }
    [[ ${#apt_missing[@]} -eq 0 ]] || apt_install "${apt_missing[@]}"
    if [[ "$ROAD" == debian ]]; then
        v_rustc="$(pkg_version rustc-web)"
        if [[ "$(pkg_version cargo-web)" != "$v_rustc" || "$(pkg_version rust-web-src)" != "$v_rustc" ]]; then
            cand="$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')"
            log "rustc-web/cargo-web/rust-web-src versions differ; aligning on $cand"
            apt_install "rustc-web=$cand" "cargo-web=$cand" "rust-web-src=$cand"
        fi
    fi
fi
if [[ "$ROAD" == debian ]]; then
    [[ -x /usr/bin/cargo && -x /usr/bin/rustc && -x /usr/bin/wasm-ld-19 ]] ||
        die "Debian's cargo/rustc/wasm-ld-19 missing after the install"
    log "Debian packages ok (rustc-web $(pkg_version rustc-web))"
elif [[ ${#apt_wanted[@]} -gt 0 ]]; then
    log "Debian packages ok (${apt_wanted[*]})"
fi

# ---------------------------------------------------------------------------------------------
# wasm-bindgen-cli and trunk, built from crates.io into $PRECOPY_TOOLS (the slow part).
#
# The compiler: rustup's whenever it is new enough, on either road (the tools are host programs;
# rustup's rustc, built with PGO, compiled a test crate with 40 % less CPU than Debian's rustc-web),
# else Debian's 1.96 on the debian road. Never with the wasm build settings (build-std would apply
# to the host build). Both tools build into one directory with the same profile, so what they
# share is compiled once; it is kept until both are installed, so an interrupted install (it takes
# minutes) resumes where it stopped.
TOOLS_MIN_RUSTC_MINOR=91 # 1.91: the newest rust-version among trunk 0.22.1's locked dependencies
TOOL_PROFILE=(
    # A build tool needs no fat LTO or single codegen unit (trunk's own release profile): they
    # make its last crate one 10-minute step on 2 cores.
    CARGO_PROFILE_RELEASE_LTO=false
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    # opt-level 1: wasm-bindgen-cli built with 8 % less CPU than at 3, and it then takes 0.84
    # instead of 0.79 s CPU on the 48 MB debug wasm of a `trunk serve` rebuild (BENCHMARKS.md).
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1
    CARGO_PROFILE_RELEASE_DEBUG=false
    CARGO_PROFILE_RELEASE_INCREMENTAL=false
)
installed_something=0
tools_cargo=()
choose_tools_cargo() { # sets tools_cargo (an env prefix and cargo) and prints which it is
    local rustup_bin version minor
    if rustup_bin="$(dirname "$(precopy_rustup)" 2>/dev/null)" &&
        version="$(cd "$PRECOPY_REPO_ROOT" && "$rustup_bin/rustc" --version 2>/dev/null)"; then
        minor="$(printf '%s\n' "$version" | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p')"
        # (On the rustup road there is no other compiler; an old one gets its chance.)
        if [[ "$ROAD" == rustup || "${minor:-0}" -ge $TOOLS_MIN_RUSTC_MINOR ]]; then
            tools_cargo=(PATH="$rustup_bin:$PATH" "$rustup_bin/cargo")
            log "the tools are built by rustup's cargo ($version)"
            return 0
        fi
    fi
    tools_cargo=(PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo)
    log "the tools are built by Debian's cargo ($(/usr/bin/rustc --version))"
}
tool_cargo_install() {
    [[ ${#tools_cargo[@]} -gt 0 ]] || choose_tools_cargo
    precopy_retry --if-output "$PRECOPY_NET_ERRORS" env -u RUSTC_BOOTSTRAP -u CARGO_UNSTABLE_BUILD_STD \
        -u CARGO_BUILD_TARGET -u RUSTFLAGS -u RUSTC -u RUSTDOC -u CARGO_TARGET_DIR \
        "${TOOL_PROFILE[@]}" CARGO_TARGET_DIR="$PRECOPY_TOOLS/build" \
        "${tools_cargo[@]}" install --root "$PRECOPY_TOOLS" "$@" </dev/null
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
    log "cargo install wasm-bindgen-cli $wbg_version (about 3 min on 2 cores)"
    # No --locked: its published lock file pins a yanked crate (webpki-roots 1.0.11 in 0.2.130).
    # No default features: they only add TLS (rustls, ring's C build), and the test runner talks
    # plain HTTP to a local chromedriver.
    tool_cargo_install --force wasm-bindgen-cli --version "$wbg_version" --no-default-features \
        --bin wasm-bindgen --bin wasm-bindgen-test-runner
fi
log "wasm-bindgen-cli ok ($wbg_version)"

if [[ "$(tool_version trunk)" != "$TRUNK_VERSION" ]]; then
    log "cargo install trunk $TRUNK_VERSION (about 10 min on 2 cores)"
    # trunk 0.22.1 declares rust-version 1.96.1; it builds with rustup's 1.95 and Debian's 1.96.
    # Without the update check (switched off in scripts/env.sh anyway); it insists on one TLS
    # feature, so rustls (its default) stays.
    tool_cargo_install --force trunk --version "$TRUNK_VERSION" --locked --ignore-rust-version \
        --no-default-features --features rustls
fi
log "trunk ok ($TRUNK_VERSION)"

if [[ $installed_something -eq 1 ]]; then
    # Everything is installed: the build directory (1-2 GB) is no longer needed. Deleting it took
    # 20 s on a busy machine, so it is moved aside at once and deleted in the background (without
    # the set-up lock, fd 9); a leftover from an interrupted deletion goes on the next run.
    mv "$PRECOPY_TOOLS/build" "$PRECOPY_TOOLS/build.old.$$"
fi
for old in "$PRECOPY_TOOLS"/build.old.*; do
    [[ -e "$old" ]] || continue
    (
        exec 9>&-
        rm -rf "$old"
    ) </dev/null >/dev/null 2>&1 &
done

# ---------------------------------------------------------------------------------------------
# wasm-opt from npm's binaryen (Debian's binaryen 108 is too old for today's wasm); release builds.
if [[ $rank -ge 2 ]]; then
    wasm_opt="$PRECOPY_NPM_PREFIX/node_modules/.bin/wasm-opt"
    # Checked by running it: an interrupted npm install can leave the package without its binary.
    wasm_opt_version() { [[ -x "$wasm_opt" ]] && "$wasm_opt" --version 2>/dev/null; }
    if [[ "$(wasm_opt_version || true)" != *"version ${BINARYEN_VERSION%%.*} "* ]]; then
        log "npm install binaryen@$BINARYEN_VERSION into $PRECOPY_NPM_PREFIX"
        mkdir -p "$PRECOPY_NPM_PREFIX"
        precopy_retry npm install --prefix "$PRECOPY_NPM_PREFIX" --no-audit --no-fund --loglevel=error \
            "binaryen@$BINARYEN_VERSION" </dev/null
        [[ "$(wasm_opt_version || true)" == *"version ${BINARYEN_VERSION%%.*} "* ]] ||
            die "wasm-opt from binaryen@$BINARYEN_VERSION does not report version ${BINARYEN_VERSION%%.*}"
    fi
    log "wasm-opt ok (binaryen $BINARYEN_VERSION)"
fi

log "ready for scripts/${level/build/build-web} (wasm32 road: $ROAD)"
