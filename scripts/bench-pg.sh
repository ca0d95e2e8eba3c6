#!/usr/bin/env bash
# Migrating a PostgreSQL 15 cluster under load (issues 9, 11): `send --then restart`, resends as
# deltas and whole, against the anchors "pg_ctl stop -m fast + rsync -a + pg_ctl start -w" and the
# same after a first rsync pass while the server runs, on the same cluster in the same run.
#
#   sudo scripts/bench-pg.sh                  loopback (127.0.0.1), no rate limit
#   sudo MODE=netns scripts/bench-pg.sh       two network namespaces joined by a veth pair,
#                                             100 Mbit/s each way (tc tbf), S = 10.78.0.1,
#                                             D = 10.78.0.2
#   CHECKPOINT_FIRST=1                        every method has the server checkpoint just before
#                                             its stop (send --before-stop, psql before pg_ctl
#                                             stop), so the copy has little WAL to replay
#   SCALE=10 TPS=200 WARMUP=20 LINK=100mbit   the defaults; also COMPRESS (zstd|auto: one more
#                                             send run with that --compress), BWLIMIT (send's --bwlimit, none
#                                             by default), OUT, WORK (kept if given), BIN (a
#                                             migrate-native binary to use instead of building)
#
# Needs root (the server runs as `postgres`; namespaces) and what scripts/setup-test-deps.sh
# installs. Each method starts from its own `cp -a` of one freshly made cluster (pgbench -i -s
# SCALE, shut down cleanly), runs the server on it at S, and puts it under pgbench (TPC-B, 4
# clients, throttled to TPS transactions/s) for WARMUP seconds, then migrates it:
#   - migrate-native: `send --pid POSTMASTER --rw DATADIR --then restart`: pre-copy under load,
#     stop, final copy, check, and the receiver starts the same command on the copy at D;
#   - anchor: `pg_ctl stop -m fast`, `rsync -a` of the data directory (in netns mode to an rsync
#     daemon at D), `pg_ctl start -w` on the copy at D.
# Meanwhile a probe client (in S's namespace) connects and runs `select 1` every ~10 ms, trying
# S then D (libpq multi-host, connect_timeout=2), and logs each attempt. Downtime as the client
# sees it: from the start of its first failed attempt to the end of its first successful one
# after it. Total: from the start of the migration to that first success. Results: a markdown
# table on stdout and in $OUT (default target/bench-pg/results-MODE.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-netns.sh
source scripts/pg-netns.sh

MODE=${MODE:-loopback}
SCALE=${SCALE:-10}
TPS=${TPS:-200}
WARMUP=${WARMUP:-20}
LINK=${LINK:-100mbit}
BWLIMIT=${BWLIMIT:-}
CHECKPOINT_FIRST=${CHECKPOINT_FIRST:-}
BIN=${BIN:-}
target=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target/bench-pg/results-$MODE.md}
WORK=${WORK:-}

die() { echo "bench-pg: $*" >&2; exit 1; }
log() { echo "bench-pg: $*" >&2; }
[[ $MODE == loopback || $MODE == netns ]] || die "MODE is loopback or netns, not $MODE"
pg_netns_preflight "$PG/psql" rsync

if [[ -z "$WORK" ]]; then
    WORK=$(mktemp -d /var/tmp/bench-pg.XXXXXX)
    remove_work=1
else
    mkdir -p "$WORK"
    remove_work=0
fi
chmod 755 "$WORK"
mkdir -p "$(dirname "$OUT")"

RSYNC_PORT=8731
RECEIVE_PORT=7331
netns_vars

daemons=()
cleanup() {
    set +e # clean up all that is left, whatever fails
    local pid
    touch "$WORK/stop-probe"
    for pid in "${daemons[@]}"; do { kill "$pid" && wait "$pid"; } 2>/dev/null; done
    pg_netns_cleanup
    if [[ $remove_work -eq 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
shopt -s globstar nullglob

netns_up
make_pristine

token=$WORK/token
echo "bench-pg-token-0123456789abcdef" >"$token"

# pgbench and the probe, both in S. pgbench's clients abort once S's server goes.
start_load() { # dir
    local dir=$1
    start_pgbench "$dir"
    rm -f "$WORK/stop-probe"
    local conninfo="host=$S_HOST,$D_HOST port=$PORT,$PORT user=postgres dbname=postgres connect_timeout=2"
    # shellcheck disable=SC2016 # the script's own variables, expanded by the inner bash
    "${IN_S[@]}" bash -c '
        while [[ ! -e $1 ]]; do
            start=$EPOCHREALTIME
            if "$3" -X -q -A -t -c "select 1" "$2" >/dev/null 2>&1; then ok=1; else ok=0; fi
            echo "$start $EPOCHREALTIME $ok"
            sleep 0.01
        done' probe "$WORK/stop-probe" "$conninfo" "$PG/psql" >"$dir/probe.log" 2>/dev/null </dev/null &
    probe_pid=$!
}

# Waits for the probe's first success after a failure (for up to about two minutes), then
# stops the load.
finish_load() { # dir
    local i
    for ((i = 0; i < 2400; i++)); do
        if awk '$3 == 0 { failed = 1 } failed && $3 == 1 { found = 1 } END { exit !found }' \
            "$1/probe.log"; then
            stop_load
            return
        fi
        sleep 0.05
    done
    log "$(basename "$1"): the probe never got an answer from D again (see $1)"
    stop_load
}

stop_load() {
    touch "$WORK/stop-probe"
    wait "$probe_pid" || true
    stop_pgbench
}

# Client downtime, total time, failed probes: from the probe log and the migration's start.
probe_figures() { # log t0
    python3 - "$1" "$2" <<'EOF'
import sys
rows = [tuple(float(x) for x in line.split()) for line in open(sys.argv[1]) if len(line.split()) == 3]
t0 = float(sys.argv[2])
first_fail = next((i for i, r in enumerate(rows) if r[2] == 0 and r[0] >= t0 - 1), None)
if first_fail is None:
    print("0.000 nan 0")
    sys.exit()
back = next((i for i in range(first_fail, len(rows)) if rows[i][2] == 1), None)
if back is None:
    print("nan nan", len(rows) - first_fail)
else:
    print(f"{rows[back][1] - rows[first_fail][0]:.3f} {rows[back][1] - t0:.1f} {back - first_fail}")
EOF
}

# Makes S's server checkpoint (CHECKPOINT_FIRST=1), the same way for every method.
checkpoint_command() {
    printf '%q ' "${IN_S[@]}" "$PG/psql" -X -q -h "$S_HOST" -p "$PORT" -U postgres -c CHECKPOINT postgres
}
before_stop=()
if [[ -n $CHECKPOINT_FIRST ]]; then before_stop=(--before-stop "$(checkpoint_command)"); fi

rows=()
# --- (i) migrate-native send --then restart, resends as deltas and whole ---------------------
migrate_native() { # name delta compress
    local dir=$WORK/$1 downtime total failed send_downtime precopy final wire verdict pid copy
    mkdir -p "$dir/dst"
    "${IN_D[@]}" "$bin" receive --listen "$D_HOST:$RECEIVE_PORT" --root "$dir/dst" --token-file "$token" \
        >"$dir/receive.out" 2>"$dir/receive.log" &
    local receiver=$!
    daemons+=("$receiver")
    for ((i = 0; i < 200; i++)); do grep -qs listening "$dir/receive.out" && break; sleep 0.05; done
    pid=$(start_source "$dir")
    start_load "$dir"
    log "migrate-native --delta $2 --compress $3: $WARMUP s of load, then send --then restart"
    sleep "$WARMUP"
    t0=$EPOCHREALTIME
    (cd "$dir" && "${IN_S[@]}" "$bin" send --to "$D_HOST:$RECEIVE_PORT" --token-file "$token" --pid "$pid" \
        --rw "$dir/pgdata" --then restart --period 1s --delta "$2" --compress "$3" --json ${BWLIMIT:+--bwlimit "$BWLIMIT"} "${before_stop[@]}" \
        >"$dir/send.json" 2>"$dir/send.log") || die "send failed: $(tail -n 20 "$dir/send.log")"
    finish_load "$dir"
    read -r downtime total failed < <(probe_figures "$dir/probe.log" "$t0")
    read -r send_downtime precopy final wire verdict < <(python3 - "$dir/send.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
m, x = d["metrics"], d["measured"]
print(f"{x['downtime_s']:.3f} {m['precopy_bytes']} {m['final_bytes']} {x['wire_bytes']} {x['verdict'].replace(' ', '_')}")
EOF
)
    local label="migrate-native, --delta $2"
    [[ $3 == off ]] || label+=", --compress $3"
    rows+=("| $label | $downtime | $send_downtime | $(ratio "$precopy") | $(ratio "$final") | $(ratio "$wire") | $total | $failed |")
    log "migrate-native --delta $2 --compress $3: verdict ${verdict//_/ }"
    copy=$dir/dst${dir}/pgdata
    (cd / && "${IN_D[@]}" setpriv --reuid=postgres --regid=postgres --init-groups "$PG/pg_ctl" -D "$copy" \
        stop -m fast >/dev/null) || log "no server to stop at D ($copy)"
    kill "$receiver" 2>/dev/null && wait "$receiver" 2>/dev/null || true
}

ratio() { python3 -c "print(f'{$1 / $cluster_bytes:.3f}')"; }

migrate_native migrate-delta on off
migrate_native migrate-whole off off
# COMPRESS=zstd (or auto): one more run with deltas and that compression.
if [[ -n ${COMPRESS:-} ]]; then migrate_native "migrate-$COMPRESS" on "$COMPRESS"; fi

# --- (ii) the anchors: stop, rsync, start; and rsync live first, then stop, rsync, start ------
anchor() { # name live-first-pass(0|1)
    local dir=$WORK/$1 downtime total failed sent live_sent=0 rsync_dst label rsyncd=
    mkdir -p "$dir/dst"
    if [[ $MODE == netns ]]; then
        cat >"$dir/rsyncd.conf" <<EOF
use chroot = false
uid = root
gid = root
[dst]
path = $dir/dst
read only = false
EOF
        "${IN_D[@]}" rsync --daemon --no-detach --config="$dir/rsyncd.conf" --address="$D_HOST" \
            --port="$RSYNC_PORT" >"$dir/rsyncd.log" 2>&1 </dev/null &
        rsyncd=$!
        daemons+=("$rsyncd")
        rsync_dst=rsync://$D_HOST:$RSYNC_PORT/dst/pgdata/
        for ((i = 0; i < 200; i++)); do
            "${IN_S[@]}" rsync "rsync://$D_HOST:$RSYNC_PORT/" >/dev/null 2>&1 && break
            sleep 0.05
        done
    else
        rsync_dst=$dir/dst/pgdata/
    fi
    start_source "$dir" >/dev/null
    start_load "$dir"
    if [[ $2 -eq 1 ]]; then
        label="rsync -a live, stop, rsync -a --no-whole-file, start"
    else
        label="stop + rsync -a + start"
    fi
    log "anchor: $WARMUP s of load, then $label"
    sleep "$WARMUP"
    t0=$EPOCHREALTIME
    if [[ $2 -eq 1 ]]; then
        # The live pass copies a cluster being written: only the second pass's result counts.
        "${IN_S[@]}" rsync -a --stats "$dir/pgdata/" "$rsync_dst" >"$dir/rsync-live.log" || true
        live_sent=$(sed -n 's/^Total bytes sent: \([0-9,.]*\).*/\1/p' "$dir/rsync-live.log" | tr -d ',.')
    fi
    if [[ -n $CHECKPOINT_FIRST ]]; then eval "$(checkpoint_command)"; fi
    local stop_at=$EPOCHREALTIME
    (cd / && "${IN_S[@]}" setpriv --reuid=postgres --regid=postgres --init-groups "$PG/pg_ctl" \
        -D "$dir/pgdata" -m fast -w stop >/dev/null)
    # rsync copies local files whole unless told otherwise; through its daemon it uses its delta
    # algorithm anyway.
    "${IN_S[@]}" rsync -a --no-whole-file --stats "$dir/pgdata/" "$rsync_dst" >"$dir/rsync.log"
    (cd / && "${IN_D[@]}" setpriv --reuid=postgres --regid=postgres --init-groups "$PG/pg_ctl" \
        -D "$dir/dst/pgdata" -l "$WORK/logs/$1-destination.log" -w \
        -o "-p $PORT -c listen_addresses='$LISTEN' -c unix_socket_directories=''" start >/dev/null)
    t1=$EPOCHREALTIME
    finish_load "$dir"
    read -r downtime total failed < <(probe_figures "$dir/probe.log" "$t0")
    sent=$(sed -n 's/^Total bytes sent: \([0-9,.]*\).*/\1/p' "$dir/rsync.log" | tr -d ',.')
    rows+=("| $label | $downtime | $(python3 -c "print(f'{$t1 - $stop_at:.3f}')") | $(ratio "${live_sent:-0}") | $(ratio "${sent:-0}") | $(ratio "$((${live_sent:-0} + ${sent:-0}))") | $total | $failed |")
    (cd / && "${IN_D[@]}" setpriv --reuid=postgres --regid=postgres --init-groups "$PG/pg_ctl" \
        -D "$dir/dst/pgdata" stop -m fast >/dev/null) || true
    if [[ -n $rsyncd ]]; then kill "$rsyncd" 2>/dev/null && wait "$rsyncd" 2>/dev/null || true; fi
}
anchor anchor 0
anchor anchor-two-pass 1

# --- the table ------------------------------------------------------------------------------
link="loopback, no limit${BWLIMIT:+ (send --bwlimit $BWLIMIT)}"
[[ $MODE == netns ]] && link="veth between two namespaces, $LINK (tbf) each way"
{
    echo "## bench-pg $(date -u +%Y-%m-%dT%H:%MZ) · $MODE · $(nproc) cores · load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "PostgreSQL 15, pgbench scale $SCALE ($((cluster_bytes / 1000000)) MB on disk), TPC-B at $TPS tps"
    echo "with 4 clients for $WARMUP s before each migration; link: $link."
    [[ -n $CHECKPOINT_FIRST ]] && echo "Every method has the server checkpoint just before its stop (CHECKPOINT_FIRST=1)."
    echo
    echo "| method | client downtime (s) | downtime by the tool (s) | pre-copied / cluster | final copy / cluster | on the wire / cluster | total (s) | failed probes |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Client downtime: a probe runs \`select 1\` on a new connection every ~10 ms (S, then D);"
    echo "from its first failed attempt to its first success after. Downtime by the tool: send's"
    echo "measured stop-to-restart; for the anchors, pg_ctl stop through pg_ctl start -w. Bytes: file"
    echo "content sent before and after the stop (send's figures; rsync's 'Total bytes sent' of its live"
    echo "and its final pass), and everything written to the socket (rsync: both passes' totals)."
    echo "Total: from the start of the migration to the probe's first success at D."
} | tee "$OUT"
