# shellcheck shell=bash
# Sourced by scripts/bench-pg.sh and scripts/sim-to-real.sh (never executed on its own): the two
# network namespaces joined by a tc-shaped veth pair, and a PostgreSQL 15 cluster under pgbench.
#
# The caller sets MODE (loopback|netns), LINK (tc rate, netns), WORK, SCALE and TPS, and calls
# `netns_vars` before anything else; it removes what is left with `pg_netns_cleanup` (on EXIT).

PG=/usr/lib/postgresql/15/bin
PORT=54329

# Hosts, namespace names and the prefixes that run a command in S's or D's namespace (nothing on
# loopback). `ip netns exec` execs the command, so `$!` of a background one is the command's pid.
netns_vars() {
    NS_S=precopy-bench-s-$$
    NS_D=precopy-bench-d-$$
    IN_S=() IN_D=()
    if [[ $MODE == netns ]]; then
        S_HOST=10.78.0.1 D_HOST=10.78.0.2 LISTEN='*'
        IN_S=(ip netns exec "$NS_S") IN_D=(ip netns exec "$NS_D")
    else
        S_HOST=127.0.0.1 D_HOST=127.0.0.1 LISTEN=127.0.0.1
    fi
}

# Dies unless root and every tool named (beside PostgreSQL's own) is here; sets `bin`, the
# migrate-native to run: BIN, else a release build in `target` (CARGO_TARGET_DIR or target).
pg_netns_preflight() { # tool...
    [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces; PostgreSQL runs as postgres)"
    local tool
    for tool in "$PG/initdb" "$PG/postgres" "$PG/pg_ctl" "$PG/pgbench" "$PG/pg_isready" setpriv \
        python3 ip tc "$@"; do
        command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup-test-deps.sh)"
    done
    if [[ -n "$BIN" ]]; then
        bin=$(realpath "$BIN")
    else
        cargo build --release -p migrate-native
        bin=$(realpath "$target/release/migrate-native")
    fi
}

as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# S and D, joined by a veth pair shaped to LINK each way (tbf); nothing on loopback.
netns_up() {
    [[ $MODE == netns ]] || return 0
    ip netns add "$NS_S"
    ip netns add "$NS_D"
    ip link add "pbs$$" netns "$NS_S" type veth peer name "pbd$$" netns "$NS_D"
    local side ns dev addr
    for side in "$NS_S pbs$$ $S_HOST" "$NS_D pbd$$ $D_HOST"; do
        read -r ns dev addr <<<"$side"
        ip -n "$ns" addr add "$addr/24" dev "$dev"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" up
    done
    netns_shape "$LINK"
}

# Sets the link's rate, each way.
netns_shape() { # rate
    local side ns dev
    for side in "$NS_S pbs$$" "$NS_D pbd$$"; do
        read -r ns dev <<<"$side"
        ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "$1" burst 256kbit latency 100ms
    done
}

# Stops every server left on a data directory under WORK, kills what runs in the namespaces and
# removes them. Runs under `set +e`.
pg_netns_cleanup() {
    local data ns pid
    shopt -s globstar nullglob
    for data in "$WORK"/*/pgdata "$WORK"/*/dst/**/pgdata; do
        [[ -f $data/postmaster.pid ]] || continue
        # A server `send --then stop` left stopped would not see pg_ctl's signal.
        pid=$(head -n 1 "$data/postmaster.pid")
        kill -CONT "$pid" 2>/dev/null
        (cd / && as_pg "$PG/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1)
    done
    if [[ $MODE == netns ]]; then
        for ns in "$NS_S" "$NS_D"; do
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        done
    fi
}

wait_ready() { # host
    local i
    for ((i = 0; i < 1200; i++)); do
        "${IN_S[@]}" "$PG/pg_isready" -q -h "$1" -p "$PORT" -t 2 && return 0
        sleep 0.05
    done
    die "no server accepting on $1:$PORT"
}

# $WORK/pristine: a cluster made by pgbench -i -s SCALE and shut down cleanly; sets cluster_bytes.
make_pristine() {
    pristine=$WORK/pristine
    log "making the cluster: pgbench -i -s $SCALE"
    mkdir "$pristine"
    chown postgres:postgres "$pristine"
    chmod 700 "$pristine"
    (cd / && as_pg "$PG/initdb" -k -A trust -U postgres -D "$pristine" >"$WORK/initdb.log")
    if [[ $MODE == netns ]]; then
        echo "host all all 10.78.0.0/24 trust" >>"$pristine/pg_hba.conf"
    fi
    mkdir -p "$WORK/logs"
    chown postgres:postgres "$WORK/logs" # pg_ctl -l writes there as postgres
    (cd / && as_pg "$PG/pg_ctl" -D "$pristine" -l "$WORK/logs/pristine.log" -w \
        -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start >/dev/null)
    "$PG/pgbench" -q -i -s "$SCALE" -h 127.0.0.1 -p "$PORT" -U postgres postgres 2>"$WORK/pgbench-init.log"
    (cd / && as_pg "$PG/pg_ctl" -D "$pristine" -m fast -w stop >/dev/null)
    cluster_bytes=$(du -sb "$pristine" | cut -f1)
    log "cluster: $((cluster_bytes / 1000000)) MB"
}

# The source server of one method, on a copy of the cluster, in S; prints the postmaster's pid.
start_source() { # dir
    local dir=$1
    mkdir -p "$dir"
    chmod 755 "$dir"
    cp -a "$pristine" "$dir/pgdata"
    # setsid --fork --wait: a parent that reaps the postmaster as soon as it is killed. A killed
    # but unreaped postmaster keeps its pid, and a server started on the copy (same host) would
    # take the copied postmaster.pid for a live server's and refuse to start.
    "${IN_S[@]}" setsid --fork --wait setpriv --reuid=postgres --regid=postgres --init-groups "$PG/postgres" \
        -D "$dir/pgdata" -p "$PORT" -c "listen_addresses=$LISTEN" -c unix_socket_directories= \
        >"$dir/source.log" 2>&1 </dev/null &
    wait_ready "$S_HOST"
    head -n 1 "$dir/pgdata/postmaster.pid"
}

# pgbench in S (TPC-B, 4 clients, TPS transactions/s); its clients abort once S's server goes.
start_pgbench() { # dir
    "${IN_S[@]}" "$PG/pgbench" -n -c 4 -j 2 -R "$TPS" -T 3600 -h "$S_HOST" -p "$PORT" -U postgres \
        postgres >"$1/pgbench.log" 2>&1 </dev/null &
    pgbench_pid=$!
}

stop_pgbench() {
    kill "$pgbench_pid" 2>/dev/null || true
    wait "$pgbench_pid" 2>/dev/null || true
}
