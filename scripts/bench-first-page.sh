#!/usr/bin/env bash
# Time to first page: `scripts/serve` from a fresh clone, until the page and its wasm are served.
#   scripts/bench-first-page.sh [--rev REV] [--port PORT] [--work DIR]
# Clones REV (default HEAD) of this repository into DIR/REV (default /tmp/precopy-first-page), with
# its own empty PRECOPY_TOOLS and CARGO_HOME, so nothing the machine built or downloaded before is
# reused except system packages and rustup's toolchains and targets (it says which road it found).
# Prints each line of serve's output with the seconds since the start, then one summary line with
# the wall time and the CPU time (the latter moves less when others use the machine).
# Compare two versions by running it once per --rev (e.g. the commit before issue 15's changes).
# PRECOPY_WASM_ROAD=debian|rustup passes through to the set-up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev=HEAD
port=18080
work=/tmp/precopy-first-page
while [[ $# -gt 0 ]]; do
    case "$1" in
    --rev) rev="$2" ;;
    --port) port="$2" ;;
    --work) work="$2" ;;
    *)
        echo "usage: $0 [--rev REV] [--port PORT] [--work DIR]" >&2
        exit 2
        ;;
    esac
    shift 2
done
command -v curl >/dev/null || { echo "bench-first-page: needs curl" >&2; exit 2; }

sha="$(git -C "$here" rev-parse --short "$rev")"
dir="$work/$sha"
rm -rf "$dir"
mkdir -p "$dir"
git clone -q "$here" "$dir/repo"
git -C "$dir/repo" checkout -q "$sha"
export PRECOPY_TOOLS="$dir/tools" CARGO_HOME="$dir/cargo-home"
# rustup's proxies live in the real CARGO_HOME: keep them reachable.
PATH="${HOME}/.cargo/bin:$PATH"

rustup_wasm32="no"
if command -v rustup >/dev/null &&
    [[ "$(rustup target list --installed 2>/dev/null)" == *wasm32-unknown-unknown* ]]; then
    rustup_wasm32="yes"
fi
echo "bench-first-page: rev $sha in $dir; rustup's wasm32 target installed before: $rustup_wasm32"
echo "bench-first-page: load at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

start=$(date +%s%N)
elapsed() { printf '%.1f' "$(( ($(date +%s%N) - start) / 1000000 ))e-3"; }
stamp() {
    local line
    while IFS= read -r line; do printf '%7s %s\n' "$(elapsed)" "$line"; done
}
# Its own session, so that the whole tree (trunk, cargo) can be stopped at the end.
# shellcheck disable=SC2016 # $1 and $2 are for the inner bash
setsid bash -c 'cd "$1" && exec scripts/serve --port "$2"' _ "$dir/repo" "$port" \
    > >(stamp >"$dir/serve.log") 2>&1 &
serve_pid=$!
trap 'kill -- -"$serve_pid" 2>/dev/null || true' EXIT

url="http://127.0.0.1:$port/"
while sleep 1; do
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        cat "$dir/serve.log"
        echo "bench-first-page: scripts/serve exited before serving the page" >&2
        exit 1
    fi
    html="$(curl -sf -m 5 "$url" 2>/dev/null || true)"
    wasm="$(grep -o 'precopy-web-[0-9a-f]*_bg\.wasm' <<<"$html" | head -n1 || true)"
    if [[ -n "$wasm" ]] && curl -sf -m 30 -o /dev/null "$url$wasm"; then
        break
    fi
done
total="$(elapsed)"
# CPU time of serve and everything it waited for (set-up, cargo, rustc, the first build): less
# sensitive than wall time to other work on a shared machine. Fields 14-17 of stat: utime, stime,
# cutime, cstime in clock ticks.
read -r ut st cut cst < <(cut -d' ' -f14-17 "/proc/$serve_pid/stat")
cpu=$(((ut + st + cut + cst) / $(getconf CLK_TCK)))
sleep 1
cat "$dir/serve.log"
echo "bench-first-page: rev $sha: first page (index.html and $wasm) after $total s, $cpu s CPU;" \
    "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
