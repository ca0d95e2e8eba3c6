#!/usr/bin/env python3
"""Bytes a delta resend would cost at several block sizes (issue 11: which block size).

    scripts/delta-blocks.py OLD_DIR NEW_DIR

OLD_DIR and NEW_DIR are two copies of the same tree taken some time apart (e.g. a PostgreSQL
data directory under pgbench copied twice with `cp -a`). For each block size, the cost of resending
every file that changed is the bytes of the blocks that differ (plus blocks past the old end that
are not zeros, as `send` does), against resending those files whole; the digests kept at the source
cost 16 bytes per block of the tree.
"""
import os
import sys

SIZES = [4096, 8192, 16384, 65536, 262144, 1 << 20]


def files(root):
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield os.path.relpath(path, root)


def cost(old, new, bs):
    """Bytes of the blocks of `new` that differ from `old` at block size `bs`."""
    total = 0
    for i in range(0, len(new), bs):
        block = new[i:i + bs]
        if i < len(old):
            if old[i:i + bs] != block:
                total += len(block)
        elif any(block):
            total += len(block)
    return total


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old_root, new_root = sys.argv[1:]
    whole = 0
    tree = 0
    changed = 0
    costs = dict.fromkeys(SIZES, 0)
    for rel in sorted(files(new_root)):
        with open(os.path.join(new_root, rel), "rb") as f:
            new = f.read()
        tree += len(new)
        old_path = os.path.join(old_root, rel)
        old = None
        if os.path.isfile(old_path):
            with open(old_path, "rb") as f:
                old = f.read()
        if old == new:
            continue
        changed += 1
        whole += len(new)
        for bs in SIZES:
            costs[bs] += len(new) if old is None else cost(old, new, bs)
    print(f"tree {tree:,} bytes; {changed} files changed, {whole:,} bytes resent whole")
    print()
    print("| block | delta bytes | / whole resend | digests kept (16 B per block of the tree) |")
    print("|---:|---:|---:|---:|")
    for bs in SIZES:
        share = costs[bs] / whole if whole else 0.0
        print(f"| {bs // 1024} KiB | {costs[bs]:,} | {share:.3f} | {16 * -(-tree // bs):,} B |")


if __name__ == "__main__":
    main()
