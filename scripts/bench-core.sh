#!/usr/bin/env bash
# Core speed and memory: criterion per-run benchmarks, the whole paper sweep on one core, and a
# 1,000,000-file run (time and peak RSS). Results go to BENCHMARKS.md by hand.
#
# BEFORE=path/to/migrate-native also runs the paper sweep side by side with that (older) build,
# RUNS times each (default 5), alternating, pinned to CPU 0, and prints user+sys CPU per run, the
# medians and whether the two wrote the same figures. Build the older one apart, e.g.
#   git worktree add --detach /tmp/core-before <commit>
#   (cd /tmp/core-before && CARGO_TARGET_DIR=/tmp/core-before/target cargo build --release -p migrate-native)
#   BEFORE=/tmp/core-before/target/release/migrate-native SWEEP_ONLY=1 scripts/bench-core.sh
# SWEEP_ONLY=1 skips criterion and the million-file run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p migrate-native
bin="${CARGO_TARGET_DIR:-target}/release/migrate-native"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One paper sweep by binary $1 into $work/$2: prints its user+sys CPU seconds.
sweep() {
  /usr/bin/time -f "%U %S" -o "$work/time" env RAYON_NUM_THREADS=1 taskset -c 0 \
    "$1" paper --out "$work/$2" --seeds 10 --policies baseline,proposed >/dev/null 2>"$work/log" ||
    { cat "$work/log" >&2; exit 1; }
  awk '{ printf "%.2f\n", $1 + $2 }' "$work/time"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [[ -n "${BEFORE:-}" ]]; then
  echo "== paper sweep side by side, one core, ${RUNS:-5} runs each, user+sys CPU s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  : >"$work/before.txt"
  : >"$work/after.txt"
  for i in $(seq "${RUNS:-5}"); do
    b=$(sweep "$BEFORE" before)
    a=$(sweep "$bin" after)
    echo "run $i: before $b, after $a"
    echo "$b" >>"$work/before.txt"
    echo "$a" >>"$work/after.txt"
  done
  echo "median: before $(median <"$work/before.txt") s, after $(median <"$work/after.txt") s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  if diff -r "$work/before" "$work/after" >/dev/null; then
    echo "figures (CSV, SVG, claims): identical"
  else
    echo "figures (CSV, SVG, claims): DIFFER"
  fi
fi
[[ -n "${SWEEP_ONLY:-}" && -n "${BEFORE:-}" ]] && exit 0

if [[ -z "${SWEEP_ONLY:-}" ]]; then
  echo "== criterion: one paper-scale run per policy"
  cargo bench -p precopy-core --bench sim -- --noplot
fi

echo "== paper sweep: 2 data sets x 5..100 Mbps step 5 x baseline+proposed x 10 seeds, one core"
/usr/bin/time -f "paper sweep: %e s wall, %U s user CPU, %M KB peak" env RAYON_NUM_THREADS=1 \
  "$bin" paper --out "$work/paper" --seeds 10 --policies baseline,proposed >/dev/null

[[ -n "${SWEEP_ONLY:-}" ]] && exit 0

echo "== 1,000,000 files (1 KB to 10 KB, 10% ReadOnly) at 100 Mbps, proposed"
cat > "$work/million.json" <<'JSON'
{"name": "million", "groups": [
  {"name": "ro",   "count": 10000, "size": {"min": 1000, "max": 10000, "step": 1000}, "kind": "ro"},
  {"name": "cold", "count": 45000, "size": {"min": 1000, "max": 10000, "step": 1000}, "kind": "rw", "probability": 0.2},
  {"name": "hot",  "count": 45000, "size": {"min": 1000, "max": 10000, "step": 1000}, "kind": "rw", "probability": 0.8}
]}
JSON
/usr/bin/time -f "million files: %e s wall, %U s user CPU, %M KB peak" \
  "$bin" simulate --dataset "$work/million.json" --bandwidth 100Mbps --policy proposed
