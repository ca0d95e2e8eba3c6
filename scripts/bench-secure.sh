#!/usr/bin/env bash
# Issue 12's benchmark, on loopback, side by side in one run: the plaintext build (protocol
# version 2, the commit before the encrypted channel) against this build encrypted, encrypted with
# zstd, and with --compress auto, and against `rsync -a` over OpenSSH (aes128-gcm) to a private
# sshd on 127.0.0.1, on a large-file tree (incompressible, then compressible data) and on many
# small files (SMALL_FILES × 200 KB, default 11,000; SMALL_FILES=0 skips them). TREES picks the
# trees (default "random text small"). Destinations are on a fresh tmpfs per run.
#
#   scripts/bench-secure.sh [FILES] [MIB_PER_FILE] [RUNS] [NARROW_MIB]   (default 4 256 3 48)
#
# Needs root for the sshd (openssh-server is installed from Debian's packages if missing).
#
# Builds both binaries in release mode (the plaintext one from `git archive`, in
# target/bench-plain/), writes the data under $BENCH_DIR (default: a temporary directory) and
# prints one Markdown row per run and variant: wall time of `send`, the data rate while sending
# (file bytes over the time spent sending them), the bytes written to the socket and the CPU time
# of send and of receive (the steadier figure on a shared machine). Then
# compressible data over a 20 Mbit/s link (send's token bucket): off, zstd, auto.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-4}
mib=${2:-256}
runs=${3:-3}
narrow_mib=${4:-48}
here=$(pwd)

plain_rev=$(git log --format=%H -1 --grep '^proto v3: an encrypted')^
plain_dir=$here/target/bench-plain
if [[ ! -x $plain_dir/target/release/migrate-native ]]; then
    rm -rf "$plain_dir/src" && mkdir -p "$plain_dir/src"
    git archive "$plain_rev" | tar -x -C "$plain_dir/src"
    (cd "$plain_dir/src" && CARGO_TARGET_DIR=$plain_dir/target cargo build -q --release -p migrate-native)
fi
cargo build -q --release -p migrate-native
work=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
# Copies: another build must not swap a binary mid-run.
cp "${CARGO_TARGET_DIR:-$here/target}/release/migrate-native" "$work/migrate-native-v3"
cp "$plain_dir/target/release/migrate-native" "$work/migrate-native-v2"
new=$work/migrate-native-v3
old=$work/migrate-native-v2
trap 'kill $(jobs -p) 2>/dev/null || true; umount "$work/dst" "$work/dst-rsync" 2>/dev/null
    [[ -z ${BENCH_DIR:-} ]] && rm -rf "$work"' EXIT
small_files=${SMALL_FILES:-11000}
printf 'bench-secure-token-0123456789\n' >"$work/token"

# A private sshd on loopback, with its own host key and a client key for root.
ssh_port=22987
start_sshd() {
    if [[ ! -x /usr/sbin/sshd ]]; then
        apt-get install -y -q -o Acquire::Retries=3 openssh-server >/dev/null
    fi
    mkdir -p "$work/ssh" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host" <<<y >/dev/null
    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/client" <<<y >/dev/null
    cp "$work/ssh/client.pub" "$work/ssh/authorized_keys"
    cat >"$work/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $ssh_port
HostKey $work/ssh/host
AuthorizedKeysFile $work/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Ciphers aes128-gcm@openssh.com
EOF
    /usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2>"$work/ssh/sshd.log" &
    sshd_pid=$!
    local i
    for ((i = 0; i < 200; i++)); do
        ssh "${ssh_opts[@]}" root@127.0.0.1 true 2>/dev/null && return
        sleep 0.05
    done
    echo "bench-secure: sshd did not come up: $(cat "$work/ssh/sshd.log")" >&2
    exit 1
}
ssh_opts=(-p "$ssh_port" -i "$work/ssh/client" -c aes128-gcm@openssh.com -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

# One `rsync -a` of a tree over ssh into an empty directory: prints the same fields as migrate
# (data rate over the whole wall time; the CPU of sshd's session and the server rsync, from the
# sshd's reaped children).
rsync_ssh() {
    local src=$1
    fresh_dst "$work/dst-rsync"
    local tick before after began ended
    tick=$(getconf CLK_TCK)
    before=$(awk '{ print $16 + $17 }' "/proc/$sshd_pid/stat")
    began=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/rsync.cpu" \
        rsync -a --stats -e "ssh ${ssh_opts[*]}" "$src/" "root@127.0.0.1:$work/dst-rsync/" >"$work/rsync.log"
    ended=$(date +%s.%N)
    after=$(awk '{ print $16 + $17 }' "/proc/$sshd_pid/stat")
    python3 - "$src" "$began" "$ended" "$work/rsync.log" <<'EOF'
import os, sys
src, began, ended, log = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src) for f in fs)
sent = next(int(l.split(":")[1].split()[0].replace(",", "")) for l in open(log) if l.startswith("Total bytes sent"))
wall = ended - began
print(f"{wall:.2f} {total / wall / 1e6:.1f} {sent / 2**20:.0f}", end=" ")
EOF
    awk -v t="$tick" -v b="$before" -v a="$after" '{ printf "%.2f %.2f\n", $1 + $2, (a - b) / t }' "$work/rsync.cpu"
}

# Incompressible: random bytes. Compressible: text-like lines (zstd -3 keeps about half).
make_tree() {
    local dir=$1 kind=$2 count=$3 size=$4
    [[ -d $dir ]] && return
    mkdir -p "$dir"
    for i in $(seq 1 "$count"); do
        if [[ $kind == random ]]; then
            head -c "$((size << 20))" /dev/urandom >"$dir/f$i"
        else
            python3 - "$dir/f$i" "$((size << 20))" <<'EOF'
import random, sys
path, size = sys.argv[1], int(sys.argv[2])
rng = random.Random(path)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(4000)]
lines, total = [], 0
while total < 8 << 20:
    lines.append(f"{rng.randint(1, 10**9)} {rng.random():.6f} " + ' '.join(rng.choices(words, k=12)) + '\n')
    total += len(lines[-1])
block = ''.join(lines).encode()
with open(path, 'wb') as f:
    for _ in range(size // len(block) + 1):
        f.write(block)
    f.truncate(size)
EOF
        fi
    done
}

# Every run writes into a tmpfs of its own. On ext4, a tree created just after the last run's was
# deleted pays for inode allocation's scan of recently deleted inodes (a quarter of the
# receiver's CPU on the small files, for whichever tool ran later): the disk, not the tool.
fresh_dst() { # dir
    umount "$1" 2>/dev/null || true
    rm -rf "$1"
    mkdir -p "$1"
    mount -t tmpfs -o size=4g tmpfs "$1"
}

# One migration: prints "wall_s rate_MBps wire_MiB send_cpu_s receive_cpu_s".
migrate() {
    local bin=$1 src=$2
    shift 2
    fresh_dst "$work/dst"
    rm -f "$work/listen"
    "$bin" receive --listen 127.0.0.1:0 --root "$work/dst" --token-file "$work/token" \
        >"$work/listen" 2>"$work/receive.log" &
    local daemon=$!
    while ! grep -q listening "$work/listen" 2>/dev/null; do sleep 0.05; done
    local addr
    addr=$(sed -n 's/^listening on //p' "$work/listen")
    local began ended
    began=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$work/send.cpu" \
        "$bin" send --to "$addr" --token-file "$work/token" --json --ro "$src" --then stop "$@" \
        -- sleep 600 >"$work/out.json" 2>"$work/send.log"
    ended=$(date +%s.%N)
    # CPU seconds of each side: steadier than wall time on a shared machine.
    local tick send_cpu receive_cpu
    tick=$(getconf CLK_TCK)
    receive_cpu=$(awk -v t="$tick" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$daemon/stat")
    send_cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$work/send.cpu")
    kill "$daemon"
    wait "$daemon" 2>/dev/null || true
    python3 - "$work/out.json" "$began" "$ended" <<'EOF'
import json, os, signal, sys
out = json.load(open(sys.argv[1]))
m, x = out["metrics"], out["measured"]
# The application, left stopped at the source: its own process group.
os.killpg(int(m["dataset"].removeprefix("pid ")), signal.SIGKILL)
wall = float(sys.argv[3]) - float(sys.argv[2])
busy = x["wire_bytes"] * 8 / x["send_rate_bps"]
print(f"{wall:.2f} {m['total_bytes'] / busy / 1e6:.1f} {x['wire_bytes'] / 2**20:.0f}", end=" ")
EOF
    echo "$send_cpu $receive_cpu"
}

start_sshd
# Many small files: random bytes, 200 KB each, in directories of 1,000.
make_small() {
    local dir=$1
    [[ -d $dir ]] && return
    python3 - "$dir" "$small_files" <<'EOF'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    d = os.path.join(root, f"d{i // 1000}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(os.urandom(200_000))
EOF
}

echo "| data | link | variant | run | wall s | data rate MB/s | on the wire MiB | CPU s: sender | receiver |"
echo "|---|---|---|---|---|---|---|---|---|"
read -r -a trees <<<"${TREES:-random text small}"
for kind in "${trees[@]}"; do
    if [[ $kind == small ]]; then
        [[ $small_files -gt 0 ]] || continue
        make_small "$work/$kind"
        label="small ${small_files}×200 KB"
        variants=(plaintext encrypted rsync-ssh)
    else
        make_tree "$work/$kind" "$kind" "$files" "$mib"
        label="$kind ${files}×${mib} MiB"
        variants=(plaintext encrypted zstd auto rsync-ssh)
    fi
    for run in $(seq 1 "$runs"); do
        # Each run starts one variant later: no variant always follows the same one (a run's
        # memory freed by the next one's fresh tmpfs must not always cost the same variant).
        local_shift=$(((run - 1) % ${#variants[@]}))
        for variant in "${variants[@]:local_shift}" "${variants[@]:0:local_shift}"; do
            case $variant in
                plaintext) r=$(migrate "$old" "$work/$kind") ;;
                encrypted) r=$(migrate "$new" "$work/$kind" --compress off) ;;
                rsync-ssh) r=$(rsync_ssh "$work/$kind") ;;
                *) r=$(migrate "$new" "$work/$kind" --compress "$variant") ;;
            esac
            read -r wall rate wire scpu rcpu <<<"$r"
            echo "| $label | loopback | $variant | $run | $wall | $rate | $wire | $scpu | $rcpu |"
        done
    done
done
# A narrow link (send's own token bucket at 20 Mbit/s) and compressible data. NARROW_MIB 0 skips it.
if [[ $narrow_mib -gt 0 ]]; then
    make_tree "$work/narrow" text 1 "$narrow_mib"
    for variant in off zstd auto; do
        r=$(migrate "$new" "$work/narrow" --compress "$variant" --bwlimit 20Mbps)
        read -r wall rate wire scpu rcpu <<<"$r"
        echo "| text 1×${narrow_mib} MiB | 20 Mbit/s | $variant | 1 | $wall | $rate | $wire | $scpu | $rcpu |"
    done
fi
