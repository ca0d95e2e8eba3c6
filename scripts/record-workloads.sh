#!/usr/bin/env bash
# Records the workload catalogue (issue 14): real applications' file access, traced with
# `migrate-native trace`, shipped as data/traces/NAME.jsonl.zst and analysed in docs/real-apps.md.
#
#   sudo scripts/record-workloads.sh [NAME...]     all workloads by default, in this order:
#     postgres  PostgreSQL 15 under pgbench (TPC-B, 4 clients, throttled), run as `postgres`,
#               checkpoints every 30 s
#     redis     Redis 7 with an append-only file and AOF rewrites, under redis-benchmark (its
#               data set made by one untraced round first)
#     sqlite    SQLite in WAL mode: a Python writer with transactions and checkpoints
#     build     `make -j2` of Lua 5.4 from Debian's source package (apt-get source)
#     git       commits to a clone of this repository, with `git gc` every 20 commits
#     nginx     a log-heavy service: nginx under ab, its access log rotated every ROTATE s
#
#   DURATION=45    seconds each application runs under load (the build: at most this long)
#   SCALE=10       data size: pgbench -s SCALE, SCALE × 10,000 Redis keys, SCALE × 1,000 SQLite rows
#   PERIOD=1s      monitoring period recorded in the traces
#   ROTATE=10      nginx: seconds between log rotations
#   OUT=data/traces   where NAME.jsonl.zst go (and NAME.log: what ran)
#   WORK=…         scratch directory (default: a fresh /var/tmp/record-workloads.XXXXXX, removed)
#   BIN=…          a migrate-native binary (default: cargo build --release)
#   NO_INSTALL=1   do not apt-get anything (fail if a tool is missing)
#   TRACE_ARGS=…   more `migrate-native trace` options (e.g. --write-monitor ptrace)
#
# Needs root: the tracer's fanotify write monitor, and PostgreSQL runs as its own user. Each
# application's process tree is what is traced; the load generators run outside the trace.
# Each application's data directory is traced with `--tree`: its files are in the data set from
# the start, whether the application opens them or not (a migration moves them all).
# CI runs every part at DURATION=3 SCALE=1 (scripts/test, stage record-workloads) so it does not rot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

DURATION=${DURATION:-45}
SCALE=${SCALE:-10}
PERIOD=${PERIOD:-1s}
ROTATE=${ROTATE:-10}
OUT=${OUT:-data/traces}
BIN=${BIN:-}
NO_INSTALL=${NO_INSTALL:-}
read -r -a trace_args <<<"${TRACE_ARGS:-}"
ALL=(postgres redis sqlite build git nginx)
PG=/usr/lib/postgresql/15/bin
LUA_SOURCE=lua5.4

die() { echo "record-workloads: $*" >&2; exit 1; }
log() { echo "record-workloads: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "needs root (fanotify; PostgreSQL runs as postgres)"
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || die "DURATION is whole seconds ≥ 1, not '$DURATION'"
[[ $SCALE =~ ^[0-9]+$ && $SCALE -ge 1 ]] || die "SCALE is a whole number ≥ 1, not '$SCALE'"
[[ $ROTATE =~ ^[0-9]+$ && $ROTATE -ge 1 ]] || die "ROTATE is whole seconds ≥ 1, not '$ROTATE'"
workloads=("$@")
[[ ${#workloads[@]} -gt 0 ]] || workloads=("${ALL[@]}")
for name in "${workloads[@]}"; do
    [[ " ${ALL[*]} " == *" $name "* ]] || die "unknown workload '$name' (known: ${ALL[*]})"
done

apt() {
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=5 -o Dpkg::Use-Pty=0 "$@" </dev/null
}
# Installs the Debian packages that are missing, retrying a failed install (mirrors flap).
need() { # package...
    local missing=() p try
    for p in "$@"; do
        [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == "ii"* ]] || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    [[ -z $NO_INSTALL ]] || die "missing packages (NO_INSTALL is set): ${missing[*]}"
    for try in 1 2 3; do
        log "apt-get install ${missing[*]} (try $try)"
        apt update -qq || true
        apt install -y -qq --no-install-recommends "${missing[@]}" && return
        sleep $((try * 5))
    done
    die "could not install ${missing[*]}"
}

need zstd python3 util-linux procps
if [[ -n $BIN ]]; then
    bin=$(realpath "$BIN")
else
    cargo build --release -p migrate-native
    bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/migrate-native")
fi
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

if [[ -z ${WORK:-} ]]; then
    WORK=$(mktemp -d /var/tmp/record-workloads.XXXXXX)
    remove_work=1
else
    mkdir -p "$WORK"
    remove_work=0
fi
chmod 755 "$WORK"
WORK=$(realpath "$WORK")

# Processes to end at exit if a part failed half-way (servers, load generators, the tracer).
pids=()
cleanup() {
    set +e
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    for data in "$WORK"/postgres/pgdata; do
        [[ -f $data/postmaster.pid ]] && (cd / && as_pg "$PG/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1)
    done
    [[ $remove_work -eq 1 ]] && rm -rf "$WORK"
}
trap cleanup EXIT
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# Polls `check` until it succeeds (a server accepting), for up to about a minute.
wait_for() { # what check...
    local what=$1 i
    shift
    for ((i = 0; i < 1200; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$trace_pid" 2>/dev/null || die "$what: the traced application exited early (see $WORK/$name.trace.log)"
        sleep 0.05
    done
    die "$what never became ready"
}

# Starts `migrate-native trace` on a command, in a directory, with the application's data
# directory as its `--tree`, in the background; sets trace_pid.
start_trace() { # name dir tree command...
    local name=$1 dir=$2 tree=$3
    shift 3
    (cd "$dir" && exec "$bin" trace --period "$PERIOD" --out "$WORK/$name.jsonl" --tree "$tree" \
        --exclude "$WORK/*.trace.log" "${trace_args[@]}" -- "$@") \
        >"$WORK/$name.trace.log" 2>&1 </dev/null &
    trace_pid=$!
    pids+=("$trace_pid")
}

# Waits for the trace to end, compresses it into OUT and says what it holds.
finish_trace() { # name
    local name=$1 rc=0
    wait "$trace_pid" || rc=$?
    [[ $rc -eq 0 || $rc -eq ${ok_status:-0} ]] || { cat "$WORK/$name.trace.log" >&2; die "$name: trace exited with $rc"; }
    [[ -s $WORK/$name.jsonl ]] || die "$name: no trace written"
    zstd -19 -q -f "$WORK/$name.jsonl" -o "$OUT/$name.jsonl.zst"
    chmod 644 "$OUT/$name.jsonl.zst"
    local records raw packed
    records=$(census "$WORK/$name.jsonl")
    raw=$(stat -c %s "$WORK/$name.jsonl")
    packed=$(stat -c %s "$OUT/$name.jsonl.zst")
    {
        echo "workload: $name"
        echo "recorded: $(date -u +%Y-%m-%dT%H:%M:%SZ) DURATION=$DURATION SCALE=$SCALE PERIOD=$PERIOD ${TRACE_ARGS:-}"
        echo "$records"
        echo "trace: $raw bytes, zstd -19: $packed bytes"
        echo "load: $load"
    } >"$OUT/$name.log"
    log "$name: $records; $raw bytes -> $packed bytes ($OUT/$name.jsonl.zst)"
}

# What a trace holds, in one line: its version, its files (there at the start, never opened,
# made while tracing) and its records by type.
census() { # trace.jsonl
    python3 - "$1" <<'PY'
import json, sys
from collections import Counter
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
files = [r for r in records if r["type"] == "file"]
opened = {r["id"] for r in records if r["type"] == "open"}
types = Counter(r["type"] for r in records)
print(f"version: {records[0]['version']}  files: {len(files)} "
      f"({sum(not f.get('new') for f in files)} there at the start, "
      f"{sum(not f.get('new') and f['id'] not in opened for f in files)} of them never opened, "
      f"{sum(bool(f.get('new')) for f in files)} made while tracing)  records: "
      + ", ".join(f"{t} {types[t]}" for t in ("write", "create", "unlink", "rename", "size")))
PY
}

record_postgres() {
    need postgresql postgresql-contrib
    local dir=$WORK/postgres port=54339
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    (cd / && as_pg "$PG/initdb" -k -A trust -U postgres -D "$dir/pgdata" >"$dir/initdb.log")
    # Checkpoints at PostgreSQL's shortest timeout, so that one (and its WAL recycling) happens
    # within a short recording, as every 5 minutes in production.
    local opts=(-p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c checkpoint_timeout=30s)
    # The data set is made before tracing (as a cluster being migrated would already hold it).
    (cd / && as_pg "$PG/pg_ctl" -D "$dir/pgdata" -l "$dir/init-server.log" -w -o "${opts[*]}" start >/dev/null)
    "$PG/pgbench" -q -i -s "$SCALE" -h 127.0.0.1 -p "$port" -U postgres postgres 2>"$dir/pgbench-init.log"
    (cd / && as_pg "$PG/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null)
    start_trace postgres / "$dir/pgdata" setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG/postgres" -D "$dir/pgdata" "${opts[@]}"
    wait_for postgres "$PG/pg_isready" -q -h 127.0.0.1 -p "$port"
    load="pgbench -i -s $SCALE, then pgbench -n -c 4 -j 2 -R 200 -T $DURATION; checkpoint_timeout=30s"
    "$PG/pgbench" -n -c 4 -j 2 -R 200 -T "$DURATION" -h 127.0.0.1 -p "$port" -U postgres postgres \
        >"$dir/pgbench.log" 2>&1
    (cd / && as_pg "$PG/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null)
    finish_trace postgres
}

record_redis() {
    need redis-server redis-tools
    local dir=$WORK/redis port=63799
    mkdir -p "$dir/data"
    # Small rewrite thresholds and a short save rule, so that rewrites and snapshots happen
    # within a short recording, as they do over hours in production.
    cat >"$dir/redis.conf" <<EOF
port $port
bind 127.0.0.1
dir $dir/data
daemonize no
appendonly yes
appendfsync everysec
auto-aof-rewrite-percentage 50
auto-aof-rewrite-min-size 4mb
save 20 10000
EOF
    local keys=$((SCALE * 10000))
    local bench=(redis-benchmark -p "$port" -q -t set,incr,lpush,hset -r "$keys" -d 256 -c 4 -n $((keys * 2)))
    # The data set is made before tracing, as for PostgreSQL: one round of the load, untraced,
    # then a shutdown that leaves the AOF and the snapshot on disk for the traced server to load.
    redis-server "$dir/redis.conf" >"$dir/preload.log" 2>&1 </dev/null &
    trace_pid=$!
    pids+=("$trace_pid")
    wait_for redis-preload redis-cli -p "$port" ping
    "${bench[@]}" >>"$dir/benchmark.log" 2>&1
    redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
    wait "$trace_pid" || true
    start_trace redis "$dir" "$dir/data" redis-server "$dir/redis.conf"
    wait_for redis redis-cli -p "$port" ping
    local deadline=$((SECONDS + DURATION))
    load="a data set from one untraced round, then redis-benchmark -t set,incr,lpush,hset -r $keys -d 256 -c 4 in rounds of $((keys * 2)) requests for ${DURATION}s"
    while ((SECONDS < deadline)); do
        timeout $((deadline - SECONDS)) "${bench[@]}" >>"$dir/benchmark.log" 2>&1 || true
    done
    redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
    finish_trace redis
}

record_sqlite() {
    need python3
    local dir=$WORK/sqlite
    mkdir -p "$dir"
    cp "$repo/scripts/sqlite-wal-writer.py" "$dir/writer.py"
    load="writer.py: WAL, $((SCALE * 1000)) rows (inserted before tracing), transactions of 20 updates/inserts, checkpoint every 2 s, ${DURATION}s"
    # The data set is made before tracing, as for PostgreSQL.
    (cd "$dir" && python3 "$dir/writer.py" "$dir/app.db" 0 $((SCALE * 1000)))
    start_trace sqlite "$dir" "$dir" python3 "$dir/writer.py" "$dir/app.db" "$DURATION" $((SCALE * 1000))
    finish_trace sqlite
}

# Lua 5.4's upstream sources from Debian's source package (the .orig tarball, without Debian's
# libtool patches), fetched once through a private deb-src list: the system's apt configuration
# is not touched.
lua_source() {
    local cache=$WORK/apt-src
    mkdir -p "$cache/lists/partial"
    echo "deb-src http://deb.debian.org/debian bookworm main" >"$cache/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$cache/lists")
    local try
    for try in 1 2 3; do
        apt "${opts[@]}" update -qq && (cd "$cache" && apt "${opts[@]}" source -qq --download-only \
            "$LUA_SOURCE" >/dev/null 2>&1) && break
        [[ $try -lt 3 ]] || die "apt-get source $LUA_SOURCE failed"
        sleep $((try * 5))
    done
    local tarball
    tarball=$(find "$cache" -maxdepth 1 -name "${LUA_SOURCE}_*.orig.tar.gz" | head -n 1)
    [[ -n $tarball ]] || die "no ${LUA_SOURCE} .orig tarball in $cache"
    mkdir -p "$cache/tree"
    tar -xzf "$tarball" -C "$cache/tree"
    find "$cache/tree" -mindepth 1 -maxdepth 1 -type d | head -n 1
}

record_build() {
    need build-essential dpkg-dev
    local src
    src=$(lua_source)
    [[ -f $src/src/Makefile ]] || die "no Lua source tree in $src"
    load="make -j2 linux of $(basename "$src") (upstream sources of Debian's $LUA_SOURCE), at most ${DURATION}s"
    # `timeout` ends a build longer than DURATION (exit 124): the trace up to then is kept.
    ok_status=124
    start_trace build "$src" "$src" timeout "$DURATION" make -j2 linux
    finish_trace build
}

record_git() {
    need git
    local dir=$WORK/git
    git clone -q --no-local "$repo" "$dir/repo"
    cat >"$dir/commits.sh" <<'EOF'
# Commits to a clone for a fixed time: each commit edits three tracked files and adds one;
# every 20th commit is followed by `git gc` (a repack that deletes loose objects).
set -euo pipefail
cd "$1"
git config user.name recorder
git config user.email recorder@localhost
mapfile -t tracked < <(git ls-files '*.rs' '*.md')
end=$((SECONDS + $2))
i=0
while ((SECONDS < end)); do
    i=$((i + 1))
    for k in 1 2 3; do
        f=${tracked[$(((i * 7 + k * 13) % ${#tracked[@]}))]}
        echo "// edit $i.$k" >>"$f"
    done
    echo "note $i" >"notes-$((i % 50)).txt"
    git add -A
    git commit -q -m "edit $i"
    if ((i % 20 == 0)); then git gc -q; fi
done
EOF
    load="commits.sh: a commit of 3 edits + 1 file, git gc every 20 commits, ${DURATION}s"
    start_trace git "$dir" "$dir/repo" bash "$dir/commits.sh" "$dir/repo" "$DURATION"
    finish_trace git
}

record_nginx() {
    need nginx-light apache2-utils curl
    local dir=$WORK/nginx port=18089
    mkdir -p "$dir/logs" "$dir/www"
    # Pages of several sizes: the service's read-only content.
    local size
    for size in 1 4 16 64 256; do
        head -c $((size * 1024)) /dev/urandom >"$dir/www/page-${size}k.bin"
    done
    cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
    access_log $dir/logs/access.log combined;
    open_file_cache max=64;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        location / { }
    }
}
EOF
    start_trace nginx "$dir" "$dir" nginx -c "$dir/nginx.conf" -p "$dir"
    wait_for nginx curl -sf "http://127.0.0.1:$port/page-1k.bin" -o /dev/null
    local master
    master=$(cat "$dir/nginx.pid")
    load="ab -c 4 over 5 pages (1-256 KiB) for ${DURATION}s; access log rotated (mv + USR1) every ${ROTATE}s"
    local deadline=$((SECONDS + DURATION)) rotation=0 ab_pids=() page
    for page in 1 4 16 64 256; do
        ab -q -c 1 -t "$DURATION" -n 100000000 "http://127.0.0.1:$port/page-${page}k.bin" >/dev/null 2>&1 &
        ab_pids+=($!)
        pids+=($!)
    done
    # Rotation as logrotate's nginx rule does it: rename, then USR1 to reopen.
    while ((SECONDS < deadline)); do
        sleep "$ROTATE" & wait $!
        ((SECONDS < deadline)) || break
        rotation=$((rotation + 1))
        mv "$dir/logs/access.log" "$dir/logs/access.log.$rotation"
        kill -USR1 "$master"
    done
    wait "${ab_pids[@]}" || true
    kill -QUIT "$master"
    finish_trace nginx
}

for name in "${workloads[@]}"; do
    log "recording $name (${DURATION}s, SCALE=$SCALE)"
    load="" ok_status=0
    "record_$name"
done
