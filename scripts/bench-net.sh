#!/usr/bin/env bash
# Transfer speed of `migrate-native send/receive` on loopback without a limit, side by side in one
# run with the raw TCP ceiling (tar piped through socat) and rsync in daemon mode (issue 5).
#
#   scripts/bench-net.sh                     both data sets, 3 runs each (hyperfine)
#   SETS=large RUNS=1 scripts/bench-net.sh   one data set, one run
#   SMALL_FILES=1100 LARGE_MB=64 ...         scaled down, for a quick look
#   BEFORE=/path/to/old/migrate-native ...   also times that build (its own receive daemon), in
#                                            the same hyperfine run, as "migrate-native (before)"
#
# Data sets: `small` = 11,000 files of 200 KB (2.2 GB), `large` = 4 files of 256 MiB (1 GiB).
# The application is `sleep 600` (it never writes); its files are given with --ro. The source is
# read once before the runs so every method reads from the page cache; each run starts from an
# empty destination after a `sync`. migrate-native fsyncs every file before acknowledging it and
# then checks the whole destination against a manifest; tar and rsync do neither, so they are
# also timed with a final `sync` ("+ sync" rows). Results: a table on stdout and
# $OUT (default target/bench-net/results.md); copy it into docs/bench-net.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SETS=${SETS:-small large}
RUNS=${RUNS:-3}
SMALL_FILES=${SMALL_FILES:-11000}
SMALL_KB=${SMALL_KB:-200}
LARGE_FILES=${LARGE_FILES:-4}
LARGE_MB=${LARGE_MB:-256}
target=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target/bench-net/results.md}
WORK=${WORK:-}
BEFORE=${BEFORE:-}

cargo build --release -p migrate-native
bin=$(realpath "$target/release/migrate-native")
for tool in socat rsync tar hyperfine; do
    command -v "$tool" >/dev/null || { echo "bench-net: $tool is not installed" >&2; exit 1; }
done

if [[ -z "$WORK" ]]; then
    WORK=$(mktemp -d /var/tmp/bench-net.XXXXXX)
    trap 'kill_daemons; rm -rf "$WORK"' EXIT
else
    mkdir -p "$WORK"
    trap 'kill_daemons' EXIT
fi
mkdir -p "$(dirname "$OUT")"
daemons=()
kill_daemons() {
    local pid
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null || true; done
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

make_set() { # name count size-bytes
    local dir=$WORK/src-$1 count=$2 size=$3
    if [[ -f $dir/.complete ]]; then return; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "bench-net: making $1: $count files of $size bytes"
    # Incompressible data, made quickly: one random block, each file a different slice of it.
    head -c $((size + 65536)) /dev/urandom > "$WORK/block"
    local i
    for ((i = 0; i < count; i++)); do
        dd if="$WORK/block" of="$dir/f$(printf %05d "$i")" iflag=skip_bytes,count_bytes \
            skip=$((i % 65536)) count="$size" bs=1M status=none
    done
    rm "$WORK/block"
    touch "$dir/.complete"
}

token=$WORK/token
echo "bench-net-token-0123456789abcdef" > "$token"

# One receive daemon and one rsync daemon for all runs.
dst_mn=$WORK/dst-migrate
dst_rs=$WORK/dst-rsync
dst_raw=$WORK/dst-raw
mkdir -p "$dst_mn" "$dst_rs" "$dst_raw"
"$bin" receive --listen 127.0.0.1:0 --root "$dst_mn" --token-file "$token" \
    > "$WORK/receive.out" 2> "$WORK/receive.log" &
daemons+=($!)
for _ in $(seq 100); do grep -q listening "$WORK/receive.out" 2>/dev/null && break; sleep 0.1; done
mn_addr=$(sed -n 's/^listening on //p' "$WORK/receive.out")
before=()
dst_before=$WORK/dst-before
if [[ -n "$BEFORE" ]]; then
    mkdir -p "$dst_before"
    "$BEFORE" receive --listen 127.0.0.1:0 --root "$dst_before" --token-file "$token" \
        > "$WORK/receive-before.out" 2> "$WORK/receive-before.log" &
    daemons+=($!)
    for _ in $(seq 100); do grep -q listening "$WORK/receive-before.out" 2>/dev/null && break; sleep 0.1; done
    before_addr=$(sed -n 's/^listening on //p' "$WORK/receive-before.out")
fi
rs_port=$(free_port)
cat > "$WORK/rsyncd.conf" <<EOF
use chroot = false
uid = root
gid = root
[dst]
path = $dst_rs
read only = false
EOF
rsync --daemon --no-detach --config="$WORK/rsyncd.conf" --address=127.0.0.1 --port="$rs_port" &
daemons+=($!)
sleep 0.5

# The commands hyperfine times. Each is a script so that hyperfine's shell stays out of the way.
cat > "$WORK/raw.sh" <<'EOF'
#!/usr/bin/env bash
# tar | socat → socat | tar -x: the raw ceiling of one TCP stream through the page cache.
set -euo pipefail
src=$1 dst=$2 port=$3 sync=${4:-}
socat -u -b 262144 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" - | tar -x -C "$dst" &
rx=$!
for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.02; done
tar -c -C "$src" . | socat -u -b 262144 - "TCP:127.0.0.1:$port"
wait "$rx"
if [[ -n "$sync" ]]; then sync; fi
EOF
cat > "$WORK/rsync.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
src=$1 port=$2 sync=${3:-}
rsync -a "$src/" "rsync://127.0.0.1:$port/dst/"
if [[ -n "$sync" ]]; then sync; fi
EOF
cat > "$WORK/migrate.sh" <<'EOF'
#!/usr/bin/env bash
# send --ro SRC -- sleep 600; the summary goes to $WORK/last-send.json, the application is ended.
set -euo pipefail
bin=$1 addr=$2 token=$3 src=$4 out=$5
"$bin" send --to "$addr" --token-file "$token" --json --then stop --period 1s --ro "$src" \
    -- sleep 600 > "$out" 2> "${out%.json}.log"
# The first "dataset" (the prediction has one too).
pid=$(sed -n 's/.*"dataset": "pid \([0-9]*\)".*/\1/p' "$out" | head -n 1)
[[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
EOF
chmod +x "$WORK"/*.sh

declare -A set_count set_size
set_count[small]=$SMALL_FILES; set_size[small]=$((SMALL_KB * 1000))
set_count[large]=$LARGE_FILES; set_size[large]=$((LARGE_MB * 1024 * 1024))

{
    echo "## bench-net $(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| data set | method | time (s) | MB/s | × raw |"
    echo "|---|---|---:|---:|---:|"
} > "$OUT"

for set in $SETS; do
    count=${set_count[$set]} size=${set_size[$set]}
    make_set "$set" "$count" "$size"
    src=$WORK/src-$set
    bytes=$((count * size))
    cat "$src"/f* > /dev/null   # into the page cache
    raw_port=$(free_port)
    json=$WORK/hyperfine-$set.json
    clean="rm -rf $dst_raw $dst_rs/* $dst_mn/* $dst_before/* && mkdir -p $dst_raw && sync"
    if [[ -n "$BEFORE" ]]; then
        before=(-n "migrate-native (before)"
            "$WORK/migrate.sh $BEFORE $before_addr $token $src $WORK/before-send-$set.json")
    fi
    hyperfine --runs "$RUNS" --export-json "$json" --prepare "$clean" \
        -n "tar|socat" "$WORK/raw.sh $src $dst_raw $raw_port" \
        -n "tar|socat + sync" "$WORK/raw.sh $src $dst_raw $raw_port sync" \
        -n "rsync daemon" "$WORK/rsync.sh $src $rs_port" \
        -n "rsync daemon + sync" "$WORK/rsync.sh $src $rs_port sync" \
        -n "migrate-native" "$WORK/migrate.sh $bin $mn_addr $token $src $WORK/last-send-$set.json" \
        "${before[@]}"
    python3 - "$json" "$set" "$count" "$size" "$bytes" >> "$OUT" <<'EOF'
import json, sys
path, name, count, size, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
results = json.load(open(path))["results"]
raw = next(r["mean"] for r in results if r["command"] == "tar|socat")
unit = f"{size >> 20} MiB" if size % (1 << 20) == 0 else f"{size / 1e3:g} KB"
label = f"{name}: {count} × {unit}"
for r in results:
    mbs = total / r["mean"] / 1e6
    print(f"| {label} | {r['command']} | {r['mean']:.2f} ± {r['stddev'] or 0:.2f} | {mbs:.0f} | {raw / r['mean']:.2f} |")
EOF
    for json in "$WORK/last-send-$set.json" ${BEFORE:+"$WORK/before-send-$set.json"}; do
        echo "bench-net: last send of $set ($(basename "$json" .json)):"
        python3 - "$json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
m, x = d["metrics"], d["measured"]
reread = x.get("reread")
print(f"  rounds {m['rounds']}, pre-copy {m['precopy_bytes']} B, downtime {x['downtime_s']:.2f} s, "
      f"verify {x['verify_s']:.2f} s"
      + (f" (read again at the source: {reread['files']} files)" if reread else "")
      + f", send rate {x['send_rate_bps'] / 8e6:.0f} MB/s, {x['verdict']}")
EOF
    done
done
{ echo; echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."; } >> "$OUT"
echo
cat "$OUT"
