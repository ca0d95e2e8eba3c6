#!/usr/bin/env bash
# Test of the wasm32 road decision (scripts/setup-toolchain.sh --road and env.sh's
# precopy_wasm_road) with stubbed rustup/dpkg/sudo on a PATH that hides the real ones, and of
# env.sh's precopy_retry (what the set-up's network steps go through).
# Cheap (about a second, no network, installs nothing); scripts/test runs it as `scripts-test`.
#   bash scripts/tests/road.sh
#
# Stub bodies and check conditions are code run later: hence the single quotes, and variables
# used only there.
# shellcheck disable=SC2016,SC2034
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The few real commands the decision uses, and nothing else (no rustup, dpkg, sudo, apt-get).
sys="$tmp/sys"
mkdir -p "$sys"
for c in bash env cat grep sed awk head tr id mkdir dirname basename flock find rm touch uname \
    sleep ls mktemp tee; do
    ln -s "$(command -v "$c")" "$sys/$c"
done
bash_path="$(command -v bash)"
printf 'ID=debian\nVERSION_ID="12"\n' >"$tmp/os-debian"
printf 'ID=fedora\nVERSION_ID="41"\n' >"$tmp/os-fedora"

# stub NAME BODY: an executable in the case's stub directory; every call is logged.
stub() {
    printf '#!%s\necho "%s $*" >>"$STUB_LOG"\n%s\n' "$bash_path" "$1" "$2" >"$case_dir/stub/$1"
    chmod +x "$case_dir/stub/$1"
}
# rustup: `target list --installed` shows wasm32 once the state file exists; `target add`
# creates it when STUB_CAN_ADD=1, else fails as a rustup without network would.
stub_rustup() {
    stub rustup '
case "$1 $2" in
"target list") echo x86_64-unknown-linux-gnu; [[ ! -f "$STUB_STATE/wasm32" ]] || echo wasm32-unknown-unknown ;;
"target add")
    if [[ "$STUB_CAN_ADD" == 1 ]]; then touch "$STUB_STATE/wasm32"; echo "info: downloading component rust-std"
    else echo "error: could not download file from https://static.rust-lang.org/..." >&2; exit 1; fi ;;
*) echo "stub rustup: unexpected: $*" >&2; exit 3 ;;
esac'
}

# new_case OS_RELEASE: a fresh home, tools cache and stub directory.
new_case() {
    case_dir="$tmp/case$((++n))"
    mkdir -p "$case_dir/stub" "$case_dir/home" "$case_dir/state"
    : >"$case_dir/log"
    os_release="$1"
    can_add=0
    forced=""
}
# in_sandbox CMD...: CMD in a clean environment, with only the stubs and $sys on PATH.
in_sandbox() {
    env -i PATH="$case_dir/stub:$sys" HOME="$case_dir/home" PRECOPY_TOOLS="$case_dir/tools" \
        PRECOPY_OS_RELEASE="$os_release" STUB_LOG="$case_dir/log" STUB_STATE="$case_dir/state" \
        STUB_CAN_ADD="$can_add" ${forced:+PRECOPY_WASM_ROAD="$forced"} "$@" </dev/null
}
# run_setup ARGS...: the set-up in the sandbox; sets rc and out (stdout and stderr).
run_setup() {
    rc=0
    out="$(in_sandbox "$bash_path" "$repo/scripts/setup-toolchain.sh" "$@" 2>&1)" || rc=$?
}
# env_road: what env.sh's precopy_wasm_road says in the sandbox.
env_road() {
    in_sandbox "$bash_path" -c 'source "$1/scripts/env.sh"; precopy_wasm_road' _ "$repo"
}

failures=0
n=0
check() { # check DESCRIPTION CONDITION (ROAD_TEST_VERBOSE=1 shows every output)
    local what="$1"
    if eval "$2"; then
        echo "ok   $n $what"
        [[ -z "${ROAD_TEST_VERBOSE:-}" ]] || printf '       | %s\n' "exit $rc" "${out//$'\n'/$'\n'       | }"
    else
        echo "FAIL $n $what"
        printf '       | %s\n' "exit $rc" "${out//$'\n'/$'\n'       | }" "calls: $(tr '\n' ';' <"$case_dir/log")"
        failures=$((failures + 1))
    fi
}
has() { [[ "$out" == *"$1"* ]]; }
called() { grep -qF "$1" "$case_dir/log"; }
add_calls() { grep -c "rustup target add" "$case_dir/log" || true; }

# 1. rustup with the target: rustup road, nothing added, even on Debian.
new_case "$tmp/os-debian"
stub_rustup
stub dpkg 'exit 0'
touch "$case_dir/state/wasm32"
run_setup --road
check "rustup with the target: rustup road" '[[ $rc -eq 0 ]] && has "wasm32 road: rustup" && ! called "target add"'
check "  env.sh agrees" '[[ "$(env_road)" == rustup ]]'

# 2. rustup without the target, able to add it.
new_case "$tmp/os-fedora"
stub_rustup
can_add=1
run_setup --road
check "rustup adds the target: rustup road" '[[ $rc -eq 0 ]] && has "wasm32 road: rustup" && called "rustup target add wasm32-unknown-unknown"'
check "  env.sh agrees" '[[ "$(env_road)" == rustup ]]'

# 3. no rustup, on Debian.
new_case "$tmp/os-debian"
stub dpkg 'exit 0'
run_setup --road
check "no rustup on Debian: debian road" '[[ $rc -eq 0 ]] && has "wasm32 road: debian" && has "no rustup"'
check "  env.sh agrees" '[[ "$(env_road)" == debian ]]'

# 4. no rustup elsewhere: a message naming what to install, exit != 0.
new_case "$tmp/os-fedora"
run_setup --road
check "no rustup elsewhere: clear message, exit != 0" '[[ $rc -ne 0 ]] && has "ERROR" && has "no rustup" && has "dnf install rustup" && has "rustup target add wasm32-unknown-unknown"'
check "  env.sh says none" '[[ "$(env_road)" == none ]]'

# 5. rustup that cannot add the target, on Debian: debian road; the failure is not retried at once.
new_case "$tmp/os-debian"
stub_rustup
stub dpkg 'exit 0'
run_setup --road
first_rc=$rc
first_out="$out"
run_setup --road
check "rustup cannot add, on Debian: debian road, add tried once over two runs" \
    '[[ $first_rc -eq 0 && $rc -eq 0 && "$first_out" == *"wasm32 road: debian"* ]] && has "wasm32 road: debian" && [[ $(add_calls) -eq 1 ]]'

# 6. rustup that cannot add the target, elsewhere: says so, exit != 0.
new_case "$tmp/os-fedora"
stub_rustup
run_setup --road
check "rustup cannot add, elsewhere: clear message, exit != 0" '[[ $rc -ne 0 ]] && has "rustup target add wasm32-unknown-unknown\` failed"'

# 7. PRECOPY_WASM_ROAD=debian wins over an installed rustup target.
new_case "$tmp/os-debian"
stub_rustup
stub dpkg 'exit 0'
touch "$case_dir/state/wasm32"
forced=debian
run_setup --road
check "PRECOPY_WASM_ROAD=debian: debian road" '[[ $rc -eq 0 ]] && has "wasm32 road: debian" && [[ "$(env_road)" == debian ]]'

# 8. macOS without rustup: the hint is Homebrew's.
new_case "$tmp/no-such-os-release"
stub uname 'echo Darwin'
run_setup --road
check "no rustup on macOS: brew hint, exit != 0" '[[ $rc -ne 0 ]] && has "brew install rustup"'

# 9. Not root, on Debian, packages missing, no terminal, sudo wants a password: the set-up says
#    why it needs root and what to run, and never lets sudo prompt.
new_case "$tmp/os-debian"
stub dpkg 'exit 0'
stub dpkg-query 'exit 1'
stub id '[[ "$1" == -u ]] && echo 1000 || echo "uid=1000(user)"'
stub sudo '[[ "$*" == "-n true" ]] || echo "PROMPTED" >>"$STUB_LOG"; exit 1'
run_setup --for serve
check "non-root without a terminal: says why and what to run, no sudo prompt" \
    '[[ $rc -ne 0 ]] && has "root is needed to run \`apt-get install -y rustc-web" && has "sudo apt-get install -y rustc-web cargo-web rust-web-src lld-19" && ! called PROMPTED && ! called "apt-get"'

# 10. precopy_retry: a network-looking failure is retried until it passes; a compile error is not
#     retried; a plain retry gives up after the last delay.
new_case "$tmp/os-debian"
retry() { # retry [--net] CMD...: precopy_retry [--if-output "$PRECOPY_NET_ERRORS"] CMD..., no delays
    rc=0
    out="$(in_sandbox "$bash_path" -c '
        source "$1/scripts/env.sh"
        shift
        [[ "$1" != --net ]] || set -- --if-output "$PRECOPY_NET_ERRORS" "${@:2}"
        PRECOPY_RETRY_DELAYS="0 0 0" precopy_retry "$@"' _ "$repo" "$@" 2>&1)" || rc=$?
}
# (What cargo said in the failure that issue 15 reports.)
stub flaky 'n=$(grep -c "^flaky" "$STUB_LOG"); if [[ $n -lt 3 ]]; then echo "error: download of 2/cc failed ... [28] Timeout was reached" >&2; exit 101; fi; echo fine'
retry --net flaky
check "retry: a timeout is retried until it passes" '[[ $rc -eq 0 && $(grep -c "^flaky" "$case_dir/log") -eq 3 ]] && has fine'
stub broken 'echo "error[E0308]: mismatched types" >&2; exit 101'
retry --net broken
check "retry: a compile error is not retried" '[[ $rc -eq 101 && $(grep -c "^broken" "$case_dir/log") -eq 1 ]] && has "not retried"'
retry broken
check "retry: without --if-output, 4 tries, then its exit code" '[[ $rc -eq 101 && $(grep -c "^broken" "$case_dir/log") -eq 5 ]] && has "giving up after 4 attempts"'

if [[ $failures -gt 0 ]]; then
    echo "road: $failures check(s) FAILED"
    exit 1
fi
echo "road: all checks passed"
