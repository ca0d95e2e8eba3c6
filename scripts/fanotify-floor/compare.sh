#!/bin/bash
# compare.sh ROUNDS "label|ENV=..|prefix" ... : the application's own time of `tar -x` under each
# prefix, interleaved round by round; each run's time goes to $RAW (default /tmp/tb/runs.txt).
# Prints per label: runs, median, ratio to the `plain` label's median, and that ratio's 95 %
# bootstrap interval (2,000 resamples of both labels' runs).
R=$1; shift
RAW=${RAW:-/tmp/tb/runs.txt}
export APP_TIME=/tmp/tb/app.tmp
: > "$RAW"
for r in $(seq 1 "$R"); do
  for v in "$@"; do
    IFS='|' read -r label envs pre <<<"$v"
    rm -rf /tmp/tb/w; mkdir /tmp/tb/w
    env $envs $pre /tmp/tb/timed.sh tar -xf /tmp/tb/files.tar -C /tmp/tb/w >/dev/null 2>&1
    echo "$r $label $(awk '{ printf "%.5f", $2 - $1 }' "$APP_TIME")" >> "$RAW"
  done
done
python3 - "$RAW" <<'PY'
import random, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    _, label, t = line.split()
    runs.setdefault(label, []).append(float(t))
plain = runs["plain"]
random.seed(1)
for label, times in runs.items():
    ratio = st.median(times) / st.median(plain)
    boot = sorted(
        st.median(random.choices(times, k=len(times))) / st.median(random.choices(plain, k=len(plain)))
        for _ in range(2000)
    )
    print(f"{label} {len(times)} {st.median(times):.4f} s {ratio:.3f}x (95 % {boot[50]:.3f}-{boot[1949]:.3f})")
PY
