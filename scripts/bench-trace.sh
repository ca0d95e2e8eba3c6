#!/usr/bin/env bash
# Overhead of `migrate-native trace` (traced time / untraced time), side by side with strace.
#   scripts/bench-trace.sh [RUNS] [FAST_RUNS]   (runs per command: write-heavy case, default 5;
#                                              tar and compute, default 10; needs root: ptrace
#                                              and fanotify)
# Workloads: (a) 300,000 small writes over 100 files (precopy-trace's `writer` example),
# (b) extracting a tar of 5,000 small files, (c) a compute-bound program with almost no I/O.
# Each row of the tables: plain, ours with the fanotify write monitor (the default), ours with
# `--write-monitor ptrace`, `strace -f --seccomp-bpf -e trace=<the ptrace mode's calls>`.
# hyperfine's "Relative" column is the overhead (plain is the fastest).
# Results go to target/bench-trace/*.md; docs/bench-trace.md holds a recorded run.
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

mkdir -p "$WORK/src"
for i in $(seq 1 5000); do head -c 512 /dev/urandom > "$WORK/src/f$i"; done
tar -cf "$WORK/files.tar" -C "$WORK/src" .
mkdir -p "$WORK/w"

bench() {
    local name="$1" runs="$2" warmup="$3" prepare="$4" cmd="$5"
    hyperfine --runs "$runs" --warmup "$warmup" --prepare "$prepare" --style basic \
        --export-markdown "$OUT/$name.md" --export-json "$OUT/$name.json" \
        -n plain "$cmd" \
        -n trace-fanotify "$BIN/migrate-native trace --out $WORK/trace.jsonl -- $cmd" \
        -n trace-ptrace "$BIN/migrate-native trace --write-monitor ptrace --out $WORK/trace.jsonl -- $cmd" \
        -n strace-seccomp-bpf "strace -f --seccomp-bpf -e trace=$CALLS -o /dev/null $cmd"
}

# The traced write-heavy runs take a minute each: no warm-up there.
bench writes "$RUNS" 0 "rm -f $WORK/w/*" "$BIN/examples/writer $WORK/w 300000 100 1"
bench tar "$FAST_RUNS" 1 "rm -rf $WORK/x; mkdir $WORK/x" "tar -xf $WORK/files.tar -C $WORK/x"
bench compute "$FAST_RUNS" 1 "true" "$BIN/examples/compute 2000000000"
for t in writes tar compute; do echo "## $t"; cat "$OUT/$t.md"; echo; done

# Does the cheaper monitor hurt the migration? The same workload (hot and cold files, 10 s)
# traced both ways, each trace replayed by the simulator with the proposed policy.
for m in fanotify ptrace; do
    rm -rf "$WORK/wl"; mkdir "$WORK/wl"
    "$BIN/migrate-native" trace --write-monitor "$m" --period 1s --include "$WORK/wl/**" \
        --out "$OUT/workload-$m.jsonl" --manifest "$OUT/workload-$m.json" \
        -- "$BIN/examples/workload" "$WORK/wl" 10
done
for bw in 5Mbps 20Mbps 100Mbps; do
    for m in fanotify ptrace; do
        echo "## workload traced with $m, $bw"
        "$BIN/migrate-native" simulate --policy proposed --bandwidth "$bw" \
            --dataset "$OUT/workload-$m.jsonl"
    done
done
