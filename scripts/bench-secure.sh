#!/usr/bin/env bash
# Issue 12's benchmark, on loopback, side by side in one run: the plaintext build (protocol
# version 2, the commit before the encrypted channel) against this build encrypted, encrypted with
# zstd, and with --compress auto, on a large-file tree (incompressible, then compressible data).
#
#   scripts/bench-secure.sh [FILES] [MIB_PER_FILE] [RUNS] [NARROW_MIB]   (default 4 256 3 48)
#
# Builds both binaries in release mode (the plaintext one from `git archive`, in
# target/bench-plain/), writes the data under $BENCH_DIR (default: a temporary directory) and
# prints one Markdown row per run and variant: wall time of `send`, the data rate while sending
# (file bytes over the time spent sending them), the bytes written to the socket and the CPU time
# of send and of receive (the steadier figure on a shared machine). Then
# compressible data over a 20 Mbit/s link (send's token bucket): off, zstd, auto.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-4}
mib=${2:-256}
runs=${3:-3}
narrow_mib=${4:-48}
here=$(pwd)

plain_rev=$(git log --format=%H -1 --grep '^proto v3: an encrypted')^
plain_dir=$here/target/bench-plain
if [[ ! -x $plain_dir/target/release/migrate-native ]]; then
    rm -rf "$plain_dir/src" && mkdir -p "$plain_dir/src"
    git archive "$plain_rev" | tar -x -C "$plain_dir/src"
    (cd "$plain_dir/src" && CARGO_TARGET_DIR=$plain_dir/target cargo build -q --release -p migrate-native)
fi
cargo build -q --release -p migrate-native
work=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
# Copies: another build must not swap a binary mid-run.
cp "$here/target/release/migrate-native" "$work/migrate-native-v3"
cp "$plain_dir/target/release/migrate-native" "$work/migrate-native-v2"
new=$work/migrate-native-v3
old=$work/migrate-native-v2
trap 'kill $(jobs -p) 2>/dev/null || true; [[ -z ${BENCH_DIR:-} ]] && rm -rf "$work"' EXIT
printf 'bench-secure-token-0123456789\n' >"$work/token"

# Incompressible: random bytes. Compressible: text-like lines (zstd -3 keeps about half).
make_tree() {
    local dir=$1 kind=$2 count=$3 size=$4
    [[ -d $dir ]] && return
    mkdir -p "$dir"
    for i in $(seq 1 "$count"); do
        if [[ $kind == random ]]; then
            head -c "$((size << 20))" /dev/urandom >"$dir/f$i"
        else
            python3 - "$dir/f$i" "$((size << 20))" <<'EOF'
import random, sys
path, size = sys.argv[1], int(sys.argv[2])
rng = random.Random(path)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(4000)]
lines, total = [], 0
while total < 8 << 20:
    lines.append(f"{rng.randint(1, 10**9)} {rng.random():.6f} " + ' '.join(rng.choices(words, k=12)) + '\n')
    total += len(lines[-1])
block = ''.join(lines).encode()
with open(path, 'wb') as f:
    for _ in range(size // len(block) + 1):
        f.write(block)
    f.truncate(size)
EOF
        fi
    done
}

# One migration: prints "wall_s rate_MBps wire_MiB send_cpu_s receive_cpu_s".
migrate() {
    local bin=$1 src=$2
    shift 2
    rm -rf "$work/dst" "$work/listen"
    "$bin" receive --listen 127.0.0.1:0 --root "$work/dst" --token-file "$work/token" \
        >"$work/listen" 2>"$work/receive.log" &
    local daemon=$!
    while ! grep -q listening "$work/listen" 2>/dev/null; do sleep 0.05; done
    local addr
    addr=$(sed -n 's/^listening on //p' "$work/listen")
    local began ended
    began=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/send.cpu" \
        "$bin" send --to "$addr" --token-file "$work/token" --json --ro "$src" --then stop "$@" \
        -- sleep 600 >"$work/out.json" 2>"$work/send.log"
    ended=$(date +%s.%N)
    # CPU seconds of each side: steadier than wall time on a shared machine.
    local tick send_cpu receive_cpu
    tick=$(getconf CLK_TCK)
    receive_cpu=$(awk -v t="$tick" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$daemon/stat")
    send_cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$work/send.cpu")
    kill "$daemon"
    wait "$daemon" 2>/dev/null || true
    python3 - "$work/out.json" "$began" "$ended" <<'EOF'
import json, os, signal, sys
out = json.load(open(sys.argv[1]))
m, x = out["metrics"], out["measured"]
# The application, left stopped at the source: its own process group.
os.killpg(int(m["dataset"].removeprefix("pid ")), signal.SIGKILL)
wall = float(sys.argv[3]) - float(sys.argv[2])
busy = x["wire_bytes"] * 8 / x["send_rate_bps"]
print(f"{wall:.2f} {m['total_bytes'] / busy / 1e6:.1f} {x['wire_bytes'] / 2**20:.0f}", end=" ")
EOF
    echo "$send_cpu $receive_cpu"
}

echo "| data | link | variant | run | send wall s | data rate MB/s | on the wire MiB | CPU s: send | receive |"
echo "|---|---|---|---|---|---|---|---|---|"
for kind in random text; do
    make_tree "$work/$kind" "$kind" "$files" "$mib"
    for run in $(seq 1 "$runs"); do
        for variant in plaintext encrypted zstd auto; do
            case $variant in
                plaintext) r=$(migrate "$old" "$work/$kind") ;;
                encrypted) r=$(migrate "$new" "$work/$kind" --compress off) ;;
                *) r=$(migrate "$new" "$work/$kind" --compress "$variant") ;;
            esac
            read -r wall rate wire scpu rcpu <<<"$r"
            echo "| $kind ${files}×${mib} MiB | loopback | $variant | $run | $wall | $rate | $wire | $scpu | $rcpu |"
        done
    done
done
# A narrow link (send's own token bucket at 20 Mbit/s) and compressible data.
make_tree "$work/narrow" text 1 "$narrow_mib"
for variant in off zstd auto; do
    r=$(migrate "$new" "$work/narrow" --compress "$variant" --bwlimit 20Mbps)
    read -r wall rate wire scpu rcpu <<<"$r"
    echo "| text 1×${narrow_mib} MiB | 20 Mbit/s | $variant | 1 | $wall | $rate | $wire | $scpu | $rcpu |"
done
