#!/bin/sh
# Trace size and tracing time of one git workload (commits and `git gc`: many creations,
# renames of lock files and unlinks) under two migrate-native binaries, alternating, so a
# version-1 tracer (main) and the version-2 one run side by side under the same load.
# Usage: scripts/bench-trace-format.sh OLD_BINARY NEW_BINARY [RUNS] [MONITOR]
set -eu
old=$1 new=$2 runs=${3:-3} monitor=${4:-ptrace}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
workload='git init -q repo && cd repo && git config user.email b@x && git config user.name b &&
  i=0; while [ $i -lt 300 ]; do echo "line $i" > f$i; i=$((i+1)); done &&
  git add . && git commit -qm one && i=0; while [ $i -lt 50 ]; do echo more >> f$i; i=$((i+1)); done &&
  git commit -qam two && git gc -q'
echo "binary,run,seconds,trace_bytes,records,creates,renames,unlinks,sizes (load: $(cut -d' ' -f1-3 /proc/loadavg))"
r=1
while [ $r -le "$runs" ]; do
  for which in old new; do
    eval bin=\$$which
    dir="$work/$which-$r"; mkdir -p "$dir"
    start=$(date +%s.%N)
    (cd "$dir" && "$bin" trace --write-monitor "$monitor" --include "$dir/**" --out "$dir/t.jsonl" \
      -- sh -c "$workload" 2>/dev/null)
    end=$(date +%s.%N)
    t="$dir/t.jsonl"
    printf '%s,%s,%.2f,%s,%s,%s,%s,%s,%s\n' "$which" "$r" "$(echo "$end - $start" | bc)" \
      "$(wc -c < "$t")" "$(wc -l < "$t")" "$(grep -c '"type":"create"' "$t" || true)" \
      "$(grep -c '"type":"rename"' "$t" || true)" "$(grep -c '"type":"unlink"' "$t" || true)" \
      "$(grep -c '"type":"size"' "$t" || true)"
  done
  r=$((r+1))
done
