#!/bin/bash
# cmp2.sh ROUNDS "label|envassign|prefix" ... ; own wall medians, interleaved, no time layer
R=$1; shift
export APP_TIME=/tmp/tb/app.tmp
declare -A W
for r in $(seq 1 $R); do
  for v in "$@"; do
    IFS='|' read -r label envs pre <<<"$v"
    rm -rf /tmp/tb/w; mkdir /tmp/tb/w
    env $envs $pre /tmp/tb/timed.sh tar -xf /tmp/tb/files.tar -C /tmp/tb/w >/dev/null 2>&1
    W[$label]+="$(awk '{ printf "%.4f", $2 - $1 }' $APP_TIME) "
  done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(echo ${W[plain]} | med)
for v in "$@"; do label=${v%%|*}; m=$(echo ${W[$label]} | med); echo "$label $m $(awk -v m=$m -v b=$base 'BEGIN{printf "%.3f", m/b}')"; done
