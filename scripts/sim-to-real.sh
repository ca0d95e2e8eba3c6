#!/usr/bin/env bash
# The simulator against real migrations (issue 14, item 5): `migrate-native send --json` runs a
# real migration and prints, beside what it measured, the core simulator's prediction for the
# same files, the write times its monitor saw and the rate it measured (`prediction`). This runs
# such migrations over a tc-shaped link between two network namespaces (scripts/pg-netns.sh) and
# tabulates measured against predicted: pre-copy rounds, pre-copy bytes, final-copy bytes,
# downtime, pre-copy time.
#
#   sudo scripts/sim-to-real.sh
#
#   APPS="postgres sqlite"   PostgreSQL 15 under pgbench (TPC-B, 4 clients, TPS transactions/s,
#                            pgbench -s SCALE), SQLite in WAL mode written continuously
#                            (scripts/sqlite-wal-writer.py, SCALE × 1,000 rows)
#   LINKS="20mbit 100mbit"   tbf rates of the veth link, each way
#   DELTAS="on off"          send --delta
#   SCALE=2 TPS=200 WARMUP=5 PERIOD=1s MAX_ROUNDS=20 POLICY=proposed
#   BIN                      a migrate-native binary (default: cargo build --release)
#   OUT                      the table (default target/sim-to-real/results.md); each run's
#                            send --json beside it
#
# Each run: a fresh copy of the application's data at S, WARMUP s of load, then `send --then
# resume` with the policy, period and round cap above; the application keeps running at S
# afterwards and is shut down. At the defaults the eight runs took 7 minutes (2 cores, load 4–6):
# a round lasts at least as long as its longest transfer (16 MB WAL segments take 7 s at
# 20 Mbit/s), hence the round cap.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-netns.sh
source scripts/pg-netns.sh

APPS=${APPS:-postgres sqlite}
LINKS=${LINKS:-20mbit 100mbit}
DELTAS=${DELTAS:-on off}
SCALE=${SCALE:-2}
TPS=${TPS:-200}
WARMUP=${WARMUP:-5}
PERIOD=${PERIOD:-1s}
MAX_ROUNDS=${MAX_ROUNDS:-20}
POLICY=${POLICY:-proposed}
BIN=${BIN:-}
target=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target/sim-to-real/results.md}
MODE=netns
LINK=${LINKS%% *}

die() { echo "sim-to-real: $*" >&2; exit 1; }
log() { echo "sim-to-real: $*" >&2; }
pg_netns_preflight
OUT=$(realpath -m "$OUT")
runs=$(dirname "$OUT")
mkdir -p "$runs"

WORK=$(mktemp -d /var/tmp/sim-to-real.XXXXXX)
chmod 755 "$WORK"
RECEIVE_PORT=7331
netns_vars
app_pid=
cleanup() {
    set +e # clean up all that is left, whatever fails
    [[ -n $app_pid ]] && kill -KILL "$app_pid" 2>/dev/null
    pg_netns_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT

netns_up
if [[ " $APPS " == *" postgres "* ]]; then make_pristine; fi
token=$WORK/token
echo "sim-to-real-token-0123456789abcdef" >"$token"

# Starts the application on fresh data in $1; sets app_pid and the tree to migrate, rw.
start_app() { # dir app
    case $2 in
    postgres)
        app_pid=$(start_source "$1")
        start_pgbench "$1"
        rw=$1/pgdata
        ;;
    sqlite)
        mkdir -p "$1/db"
        python3 scripts/sqlite-wal-writer.py "$1/db/app.db" 3600 $((SCALE * 1000)) \
            >"$1/writer.log" 2>&1 </dev/null &
        app_pid=$!
        rw=$1/db
        ;;
    *) die "unknown application $2 (postgres, sqlite)" ;;
    esac
}

stop_app() { # app
    if [[ $1 == postgres ]]; then
        stop_pgbench
        (cd / && as_pg "$PG/pg_ctl" -D "$rw" -m immediate -w stop >/dev/null)
    else
        kill "$app_pid" && wait "$app_pid" 2>/dev/null || true
    fi
    app_pid=
}

migrate() { # app link delta
    local name="$1-$2-delta-$3" dir receiver i
    dir=$WORK/$name
    mkdir -p "$dir/dst"
    "${IN_D[@]}" "$bin" receive --listen "$D_HOST:$RECEIVE_PORT" --root "$dir/dst" --token-file "$token" \
        >"$dir/receive.out" 2>"$dir/receive.log" &
    receiver=$!
    for ((i = 0; i < 200; i++)); do grep -qs listening "$dir/receive.out" && break; sleep 0.05; done
    start_app "$dir" "$1"
    log "$name: $WARMUP s of load, then send"
    sleep "$WARMUP"
    "${IN_S[@]}" "$bin" send --to "$D_HOST:$RECEIVE_PORT" --token-file "$token" --pid "$app_pid" \
        --rw "$rw" --then resume --policy "$POLICY" --period "$PERIOD" --max-rounds "$MAX_ROUNDS" \
        --delta "$3" --json >"$runs/$name.json" 2>"$dir/send.log" ||
        die "$name: send failed: $(tail -n 20 "$dir/send.log")"
    stop_app "$1"
    kill "$receiver" 2>/dev/null && wait "$receiver" 2>/dev/null || true
    rm -rf "$dir"
}

for link in $LINKS; do
    netns_shape "$link"
    for app in $APPS; do
        for delta in $DELTAS; do migrate "$app" "$link" "$delta"; done
    done
done

# --- the table ------------------------------------------------------------------------------
{
    echo "## sim-to-real $(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "Policy $POLICY, period $PERIOD, round cap $MAX_ROUNDS; $WARMUP s of load before each send;"
    echo "PostgreSQL: pgbench -s $SCALE, TPC-B at $TPS tps, 4 clients; SQLite: WAL, $((SCALE * 1000)) rows."
    echo "Veth between two namespaces, tbf each way. Each cell: measured / predicted. Rates: what the"
    echo "policy planned with (bytes written over time in sends) and file bytes per second of whole"
    echo "sends, acknowledgement to acknowledgement (the prediction's link, where measured)."
    echo
    python3 - "$runs" $APPS -- $LINKS -- $DELTAS <<'EOF'
import json, sys
runs, rest = sys.argv[1], sys.argv[2:]
apps = rest[:rest.index("--")]
rest = rest[rest.index("--") + 1:]
links, deltas = rest[:rest.index("--")], rest[rest.index("--") + 1:]
print("| application | link | delta | rate: planned / whole sends (Mbit/s) | rounds | pre-copy (MB) | final copy (MB) "
      "| downtime (s) | of which final copy (s) | pre-copy time (s) | end |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for link in links:
    for app in apps:
        for delta in deltas:
            d = json.load(open(f"{runs}/{app}-{link}-delta-{delta}.json"))
            m, x, p = d["metrics"], d["measured"], d["prediction"]
            if p is None:
                p = {k: float("nan") for k in m} | {"end_reason": {"kind": "none"}}
            pair = lambda a, b, f: f"{f(a)} / {f(b)}"
            mb = lambda v: f"{v / 1e6:.1f}"
            s = lambda v: f"{v:.2f}"
            whole = x["whole_rate_bytes_per_s"]
            whole = "–" if whole is None else f"{whole * 8 / 1e6:.1f}"
            print(f"| {app} | {link} | {delta} | {x['send_rate_bps'] / 1e6:.1f} / {whole} "
                  f"| {m['rounds']} / {p['rounds']} "
                  f"| {pair(m['precopy_bytes'], p['precopy_bytes'], mb)} "
                  f"| {pair(m['final_bytes'], p['final_bytes'], mb)} "
                  f"| {pair(m['downtime_s'], p['downtime_s'], s)} "
                  f"| {s(x['downtime']['final_copy_s'])} "
                  f"| {pair(m['precopy_time_s'], p['precopy_time_s'], s)} "
                  f"| {m['end_reason']['kind']} / {p['end_reason']['kind']} |")
EOF
    echo
    echo "Rerun: \`sudo scripts/sim-to-real.sh\` (see its header for the parameters); each run's"
    echo "\`send --json\` is in $(basename "$runs")/."
} | tee "$OUT"
