#!/usr/bin/env bash
# Browser end-to-end test of the simulator (scripts/test runs it as the e2e stage).
#   tests/e2e/run.sh            the end-to-end checks (e2e.mjs)
#   tests/e2e/run.sh --bench    the browser benchmarks instead (bench.mjs, docs/bench-web.md)
# Serves the release build in dist/ (built by scripts/build-web if missing; PRECOPY_DIST overrides)
# with python3's static server on a free port of 127.0.0.1, compares the page's figures with
# migrate-native's, and stops the server on exit. Screenshots go to tests/e2e/out/.
# The browser: $CHROME or $CHROMIUM when set, else Chrome/Chromium found on PATH (browser.mjs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/../../scripts/env.sh"
cd "$PRECOPY_REPO_ROOT"

dist="${PRECOPY_DIST:-$PRECOPY_REPO_ROOT/dist}"
out="$here/out"
mkdir -p "$out"

if [[ ! -f "$dist/index.html" ]]; then
    echo "e2e: no $dist/index.html: building it (scripts/build-web)"
    scripts/build-web
fi

# Always (re)build: cargo makes it a no-op when up to date, and a stale binary after a core
# change would make the figures disagree for the wrong reason.
cli="$PRECOPY_REPO_ROOT/target/release/migrate-native"
echo "e2e: building migrate-native (release)"
(native_env && cargo build --release -p migrate-native)

# playwright-core only: it drives the system's Chrome/Chromium and never downloads a browser.
if [[ ! -f "$here/node_modules/playwright-core/package.json" ]]; then
    echo "e2e: npm ci (playwright-core)"
    (cd "$here" && export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 &&
        precopy_retry npm ci --no-audit --no-fund --loglevel=error)
fi
# $CHROME or $CHROMIUM if set, else the first Chrome/Chromium on PATH (browser.mjs); none: say so.
browser="$(node "$here/browser.mjs")"
echo "e2e: browser $browser"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dist" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
    sleep 0.1
done
url="http://127.0.0.1:$port/"

if [[ "${1:-}" == "--bench" ]]; then
    node "$here/bench.mjs" "$url" "$out" "$dist"
    exit
fi

# What the page must show: the native binary's figures for the same configurations. The page
# replays traces as docs/real-apps.md does (writes looped to 20000 s), so the CLI is told so.
expected="$out/expected"
mkdir -p "$expected"
workload=postgres
for policy in baseline proposed; do
    "$cli" simulate --json --dataset fixed --scale 0.1 --bandwidth 20Mbps --seed 3 --policy "$policy" \
        >"$expected/fixed-$policy.json"
    "$cli" simulate --json --dataset "$here/fixtures/small-trace.jsonl" --bandwidth 20Mbps --seed 3 \
        --loop-trace 20000s --policy "$policy" >"$expected/trace-$policy.json"
    # A shipped workload with every other setting at its default (the page's too).
    "$cli" simulate --json --dataset "data/traces/$workload.jsonl.zst" --bandwidth 20Mbps \
        --loop-trace 20000s --policy "$policy" >"$expected/workload-$policy.json"
    "$cli" simulate --json --dataset "$here/fixtures/lifetimes-v2.jsonl" --bandwidth 1Mbps --seed 3 \
        --loop-trace 20000s --policy "$policy" >"$expected/lifetimes-$policy.json"
done
# The paper view's catalogue for one workload at two bandwidths: scripts/real-apps.sh's sweep.
catalogue=(sweep --datasets data/traces/sqlite.jsonl.zst --policies baseline,proposed,sweep,converge,qemu,clairvoyant
    --bandwidths 20,100 --seeds 1 --period 10s --loop-trace 20000s)
"$cli" "${catalogue[@]}" --format json >"$expected/catalogue.json"
echo "migrate-native ${catalogue[*]}" >"$expected/catalogue-command.txt"

node "$here/e2e.mjs" "$url" "$out" "$expected" "$workload"
