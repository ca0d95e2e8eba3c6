#!/usr/bin/env bash
# Overhead of `migrate-native trace` (traced / untraced), its two identification modes side by
# side with strace, in one run:
#   scripts/bench-trace.sh [RUNS] [FAST_RUNS]   (rounds: write-heavy case, default 5; tar and
#                                              compute, default 10; needs root: ptrace,
#                                              fanotify, cgroups, the proc connector)
# Workloads: (a) 300,000 small writes over 100 files (precopy-trace's `writer` example),
# (b) extracting a tar of 5,000 small files, (c) a compute-bound program with almost no I/O.
# Variants: plain; `trace --identify-with cgroup` (stop-free, the default where permitted);
# `trace --identify-with ptrace` (the paper's method: stops on opens, writes from fanotify);
# `strace -f --seccomp-bpf -e trace=<the ptrace mode's calls>`.
# The variants are interleaved (one run of each per round, in turn), so a change of the machine's
# load hits all of them alike; each run's wall, user and system time come from GNU time (CPU
# time includes the tracer and every process it waited for). The table gives medians, the
# overhead (median wall / plain's median wall) and CPU time (user + system, median).
# Raw runs and tables go to $CARGO_TARGET_DIR/bench-trace/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${1:-5}"
FAST_RUNS="${2:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p migrate-native
cargo build --release -q -p precopy-trace --example writer --example compute --example workload
BIN="$CARGO_TARGET_DIR/release"
OUT="$CARGO_TARGET_DIR/bench-trace"
mkdir -p "$OUT"
# On a tmpfs of its own (not /dev/shm: the tracer leaves /dev out): the disk's writeback (other
# jobs on a shared machine) made the untraced tar time alone vary 8x, and tracing overhead is what
# is measured here, not the disk.
WORK="$(mktemp -d)"
if mount -t tmpfs -o size=2g tmpfs "$WORK" 2>/dev/null; then
    trap 'umount "$WORK"; rm -rf "$WORK"' EXIT
else
    echo "bench-trace: no tmpfs (needs root): working on disk, expect noisy tar times" >&2
    trap 'rm -rf "$WORK"' EXIT
fi

# The calls the ptrace mode's seccomp filter stops on (src/arch/x86_64.rs, minus clone/clone3).
CALLS=open,openat,openat2,creat,dup,dup2,dup3,fcntl,close,close_range,write,pwrite64,writev,pwritev,pwritev2,sendfile,copy_file_range,splice,truncate,ftruncate,fallocate,rename,renameat,renameat2,unlink,unlinkat,mmap

mkdir -p "$WORK/src" "$WORK/w"
for i in $(seq 1 5000); do head -c 512 /dev/urandom > "$WORK/src/f$i"; done
tar -cf "$WORK/files.tar" -C "$WORK/src" .

# The application's own time, taken inside the traced tree by the shell that runs it (the same
# wrapper in every variant): what a live application feels, without the tracer's set-up before
# it starts and its last reads after it ends, which the whole command's wall time includes.
cat >"$OUT/timed.sh" <<'EOF'
#!/bin/bash
start=$EPOCHREALTIME
"$@"
echo "$start $EPOCHREALTIME" >"$APP_TIME"
EOF
chmod +x "$OUT/timed.sh"
export APP_TIME="$OUT/app.tmp"

# bench NAME ROUNDS PREPARE CMD: RAW gets "variant wall user system app" per run.
bench() {
    local name="$1" rounds="$2" prepare="$3" cmd="$OUT/timed.sh $4" raw="$OUT/$1.runs"
    local -A variants=(
        [plain]="$cmd"
        [stop-free]="$BIN/migrate-native trace --identify-with cgroup --out $WORK/trace.jsonl -- $cmd"
        [ptrace]="$BIN/migrate-native trace --identify-with ptrace --out $WORK/trace.jsonl -- $cmd"
        [strace]="strace -f --seccomp-bpf -e trace=$CALLS -o /dev/null $cmd"
    )
    : > "$raw"
    echo "$name: load before $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/$name.load"
    for round in $(seq 1 "$rounds"); do
        for v in plain stop-free ptrace strace; do
            eval "$prepare"
            rm -f "$APP_TIME"
            local began=$EPOCHREALTIME ended wall app
            /usr/bin/time -o "$OUT/time.tmp" -f "%U %S" ${variants[$v]} > /dev/null 2>&1
            ended=$EPOCHREALTIME
            wall=$(awk -v b="$began" -v e="$ended" 'BEGIN { printf "%.4f", e - b }')
            app=$(awk '{ printf "%.4f", $2 - $1 }' "$APP_TIME")
            echo "$v $wall $(cat "$OUT/time.tmp") $app" >> "$raw"
        done
    done
    echo "$name: load after $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/$name.load"
    python3 - "$raw" > "$OUT/$name.md" <<'EOF'
import statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    v, wall, user, system, app = line.split()
    runs.setdefault(v, []).append((float(wall), float(user) + float(system), float(app)))
base = st.median(w for w, _, _ in runs["plain"])
app_base = st.median(a for _, _, a in runs["plain"])
print("| variant | runs | wall median (min–max) | overhead | CPU median | application's own time | its overhead |")
print("|---|---|---|---|---|---|---|")
for v, r in runs.items():
    walls = [w for w, _, _ in r]
    app = st.median(a for _, _, a in r)
    print(f"| {v} | {len(r)} | {st.median(walls):.3f} s ({min(walls):.3f}–{max(walls):.3f}) "
          f"| {st.median(walls) / base:.2f}× | {st.median(c for _, c, _ in r):.3f} s "
          f"| {app:.4f} s | {app / app_base:.2f}× |")
EOF
    echo "## $name"; cat "$OUT/$name.md"; echo
}

bench writes "$RUNS" "rm -f $WORK/w/*" "$BIN/examples/writer $WORK/w 300000 100 1"
bench tar "$FAST_RUNS" "rm -rf $WORK/x; mkdir $WORK/x" "tar -xf $WORK/files.tar -C $WORK/x"
bench compute "$FAST_RUNS" "true" "$BIN/examples/compute 20000000000"

# Does the cheaper write monitor hurt the migration? The same workload (hot and cold files, 10 s)
# traced with each write monitor (identified with ptrace both times, as when this was recorded),
# each trace replayed by the simulator with the proposed policy.
# The files exist before tracing starts (a run of 0 s makes them), as when this was recorded: a
# version-2 trace tells files created while tracing, and those are not there to migrate at 0.
for m in fanotify ptrace; do
    rm -rf "$WORK/wl"; mkdir "$WORK/wl"
    "$BIN/examples/workload" "$WORK/wl" 0
    "$BIN/migrate-native" trace --identify-with ptrace --write-monitor "$m" --period 1s \
        --include "$WORK/wl/**" --out "$OUT/workload-$m.jsonl" --manifest "$OUT/workload-$m.json" \
        -- "$BIN/examples/workload" "$WORK/wl" 10
done
for bw in 5Mbps 20Mbps 100Mbps; do
    for m in fanotify ptrace; do
        echo "## workload traced with $m, $bw"
        "$BIN/migrate-native" simulate --policy proposed --bandwidth "$bw" \
            --dataset "$OUT/workload-$m.jsonl"
    done
done
