#!/usr/bin/env bash
# Issue 13's last benchmark: pgbench's throughput while `send` pre-copies a PostgreSQL 15 server
# it started and identifies live, stop-free (`--identify-with cgroup`) and with ptrace
# (`--identify-with ptrace`), against the same server started without send; interleaved run by
# run, on loopback, in one run.
#
#   sudo scripts/bench-pg-tps.sh [RUNS] [SECONDS]     (default 3 30)
#   SCALE=10 BWLIMIT=20Mbps BIN=...                   the defaults; BIN as in bench-pg.sh
#
# Each run starts from its own copy of one freshly made cluster (pgbench -i -s SCALE). For the
# send variants, the server runs as `send ... -- postgres ...`; pgbench starts once send says it
# has identified the files (pre-copy begins then) and runs unthrottled (TPC-B, 4 clients, 2
# threads) for SECONDS. send's --bwlimit keeps the pre-copy going for longer than that; a run in
# which pre-copy ended before pgbench did (the server would be frozen for the final copy) is
# reported as invalid, not counted. Then send and the server are killed.
# Output: a Markdown table of every run's TPS (pgbench's "without initial connection time") and
# the medians with their ratio to the plain server's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/pg-netns.sh
source scripts/pg-netns.sh

RUNS=${1:-3}
SECONDS_PER_RUN=${2:-30}
MODE=loopback
SCALE=${SCALE:-10}
TPS=0 # pg-netns.sh's throttle; unused here (pgbench runs unthrottled)
BWLIMIT=${BWLIMIT:-20Mbps}
BIN=${BIN:-}
target=${CARGO_TARGET_DIR:-target}
RECEIVE_PORT=7333

die() { echo "bench-pg-tps: $*" >&2; exit 1; }
log() { echo "bench-pg-tps: $*" >&2; }
pg_netns_preflight "$PG/psql"

WORK=$(mktemp -d /var/tmp/bench-pg-tps.XXXXXX)
chmod 755 "$WORK"
netns_vars
daemons=()
cleanup() {
    set +e
    local pid
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null; done
    pg_netns_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
make_pristine
token=$WORK/token
echo "bench-pg-tps-token-0123456789abcdef" >"$token"

# Waits for a line matching $2 in file $1, while process $3 lives.
wait_for_line() { # file pattern pid
    until grep -qs -- "$2" "$1"; do
        kill -0 "$3" 2>/dev/null || die "gone before '$2' appeared in $1: $(tail -n 5 "$1")"
        sleep 0.05
    done
}

# pgbench, unthrottled, for SECONDS_PER_RUN; prints its TPS.
pgbench_tps() { # dir
    "$PG/pgbench" -n -c 4 -j 2 -T "$SECONDS_PER_RUN" -h 127.0.0.1 -p "$PORT" -U postgres postgres \
        >"$1/pgbench.log" 2>&1 || die "pgbench failed: $(tail -n 5 "$1/pgbench.log")"
    sed -n 's/^tps = \([0-9]*\)\.[0-9]* (without initial connection time)$/\1/p' "$1/pgbench.log"
}

# One run of a variant; prints its TPS, or "invalid".
run_variant() { # variant run
    local dir=$WORK/$1-$2 tps server
    mkdir -p "$dir/dst"
    chmod 755 "$dir"
    if [[ $1 == plain ]]; then
        start_source "$dir" >/dev/null
        tps=$(pgbench_tps "$dir")
        (cd / && as_pg "$PG/pg_ctl" -D "$dir/pgdata" stop -m immediate >/dev/null 2>&1) || true
        echo "$tps"
        return
    fi
    cp -a "$pristine" "$dir/pgdata"
    "$bin" receive --listen "127.0.0.1:$RECEIVE_PORT" --root "$dir/dst" --token-file "$token" \
        >"$dir/receive.out" 2>"$dir/receive.log" &
    local receiver=$!
    daemons+=("$receiver")
    wait_for_line "$dir/receive.out" listening "$receiver"
    "$bin" send --to "127.0.0.1:$RECEIVE_PORT" --token-file "$token" --identify-with "$1" \
        --bwlimit "$BWLIMIT" --period 1s --json -- \
        setpriv --reuid=postgres --regid=postgres --init-groups "$PG/postgres" -D "$dir/pgdata" \
        -p "$PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
        >"$dir/send.json" 2>"$dir/send.log" </dev/null &
    server=$!
    daemons+=("$server")
    wait_for_line "$dir/send.log" "send: identified" "$server"
    wait_ready 127.0.0.1
    tps=$(pgbench_tps "$dir")
    if grep -q "pre-copy ends" "$dir/send.log" || ! kill -0 "$server" 2>/dev/null; then
        log "$1 run $2: pre-copy ended before pgbench did (raise SECONDS or lower BWLIMIT)"
        tps=invalid
    fi
    kill "$server" "$receiver" 2>/dev/null || true
    wait "$server" "$receiver" 2>/dev/null || true
    # The server outlives send (stop-free) or dies with it (ptrace): stop whatever is left.
    if [[ -f $dir/pgdata/postmaster.pid ]]; then
        kill -CONT "$(head -n 1 "$dir/pgdata/postmaster.pid")" 2>/dev/null || true
        (cd / && as_pg "$PG/pg_ctl" -D "$dir/pgdata" stop -m immediate >/dev/null 2>&1) || true
    fi
    echo "$tps"
}

variants=(plain cgroup ptrace)
declare -A tps_of
log "load: $(cut -d' ' -f1-3 /proc/loadavg) at the start"
for ((run = 1; run <= RUNS; run++)); do
    for variant in "${variants[@]}"; do
        tps_of[$variant,$run]=$(run_variant "$variant" "$run")
        log "run $run $variant: ${tps_of[$variant,$run]} tps"
    done
done
log "load: $(cut -d' ' -f1-3 /proc/loadavg) at the end"

echo "PostgreSQL 15, pgbench scale $SCALE ($((cluster_bytes / 1000000)) MB), TPC-B unthrottled, 4 clients," \
    "$SECONDS_PER_RUN s per run; send --bwlimit $BWLIMIT on loopback"
echo
echo "| variant | $(for ((r = 1; r <= RUNS; r++)); do printf 'run %d | ' "$r"; done)median TPS | of plain |"
echo "|---|$(for ((r = 1; r <= RUNS; r++)); do printf -- '---:|'; done)---:|---:|"
median() { tr ' ' '\n' | grep -v '^invalid$' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
plain_median=$(for ((r = 1; r <= RUNS; r++)); do echo "${tps_of[plain,$r]}"; done | median)
for variant in "${variants[@]}"; do
    values=$(for ((r = 1; r <= RUNS; r++)); do echo "${tps_of[$variant,$r]}"; done)
    m=$(median <<<"$values")
    name=$variant
    [[ $variant != plain ]] && name="send --identify-with $variant"
    printf '| %s | %s | %s | %s |\n' "$name" "$(tr '\n' '|' <<<"$values" | sed 's/|$//; s/|/ | /g')" "$m" \
        "$(awk -v m="$m" -v p="$plain_median" 'BEGIN { printf "%.1f %%", 100 * m / p }')"
done
