#!/usr/bin/env bash
# The sweep that chose the model's defaults (docs/model.md): for each rate mapping, write
# intensity and monitoring period, run the paper's evaluation (baseline vs proposed, 2 seeds) and
# count how many of the paper's five claims hold. Prints one line per setting.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p migrate-native
bin=target/release/migrate-native
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for mapping in linear per-window; do
    for intensity in 0.003 0.01 0.03 0.1; do
        for period in 1 3 10 30 60; do
            claims=$("$bin" paper --out "$out" --seeds 2 --policies baseline,proposed \
                --rate-mapping "$mapping" --intensity "$intensity" --period "${period}s" 2>/dev/null)
            holds=$(grep -c '| yes |' <<<"$claims" || true)
            ranges=$(grep '^| [fv]' <<<"$claims" | awk -F'|' '{printf "%s;", $6}')
            echo "$mapping intensity=$intensity period=${period}s holds=$holds ::$ranges"
        done
    done
done
