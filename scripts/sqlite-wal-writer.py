#!/usr/bin/env python3
# Used by scripts/record-workloads.sh and scripts/sim-to-real.sh: writer.py PATH SECONDS ROWS.
"""A WAL-mode SQLite writer: small transactions, a checkpoint every 2 s, for a fixed time."""
import os, random, sqlite3, sys, time
path, duration, rows = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
db = sqlite3.connect(path, isolation_level=None)
db.execute("pragma journal_mode=wal")
db.execute("pragma synchronous=normal")
db.execute("create table if not exists item(id integer primary key, body blob, n integer)")
# Rows are inserted only into an empty table: a caller may make the data set beforehand (with
# SECONDS = 0), as a database being migrated already holds it.
if db.execute("select count(*) from item").fetchone()[0] == 0:
    db.execute("begin")
    for i in range(rows):
        db.execute("insert or replace into item values (?, ?, 0)", (i, os.urandom(rng.randint(64, 2048))))
    db.execute("commit")
end = time.monotonic() + duration
next_checkpoint = time.monotonic() + 2
while time.monotonic() < end:
    db.execute("begin")
    for _ in range(20):
        i = rng.randrange(rows * 2)
        if rng.random() < 0.7:
            db.execute("update item set n = n + 1 where id = ?", (i,))
        else:
            db.execute("insert or replace into item values (?, ?, 1)", (i, os.urandom(rng.randint(64, 2048))))
    db.execute("commit")
    if time.monotonic() >= next_checkpoint:
        db.execute("pragma wal_checkpoint(truncate)")
        next_checkpoint += 2
    time.sleep(0.002)
db.close()
