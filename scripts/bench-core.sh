#!/usr/bin/env bash
# Core speed and memory: criterion per-run benchmarks, the whole paper sweep on one core, and a
# 1,000,000-file run (time and peak RSS). Results go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p migrate-native
bin=target/release/migrate-native
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== criterion: one paper-scale run per policy"
cargo bench -p precopy-core --bench sim -- --noplot

echo "== paper sweep: 2 data sets x 5..100 Mbps step 5 x baseline+proposed x 10 seeds, one core"
/usr/bin/time -f "paper sweep: %e s wall, %U s user CPU, %M KB peak" env RAYON_NUM_THREADS=1 \
  "$bin" paper --out "$work/paper" --seeds 10 --policies baseline,proposed >/dev/null

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
