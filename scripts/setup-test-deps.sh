#!/usr/bin/env bash
# Idempotent set-up of the real applications the acceptance tests migrate
# (crates/migrate-native/tests/apps.rs) and scripts/bench-pg.sh uses, on Debian 12, as root:
#   postgresql (15) + postgresql-contrib (pgbench, pg_amcheck, amcheck), sqlite3, python3 (the
#   SQLite writer), git, rsync (the benchmark's anchor), util-linux (setpriv, runuser), procps,
#   iproute2 (the benchmark's network namespaces).
# Installs only what is missing; a set-up machine passes through in well under a second.
# Run by scripts/test (setup) when it runs as root.
set -euo pipefail

PACKAGES=(postgresql postgresql-contrib sqlite3 python3 git rsync util-linux procps iproute2)

log() { printf 'setup-test-deps: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    log "not root: cannot install ${PACKAGES[*]}" >&2
    exit 1
fi

pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii"* ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

apt() {
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=5 -o Dpkg::Use-Pty=0 "$@" </dev/null
}
log "apt-get update"
# Unreachable third-party sources only warn; a real problem shows in the install below.
apt update -qq || log "warning: apt-get update reported errors; trying the install anyway"
log "apt-get install ${missing[*]}"
apt install -y -qq --no-install-recommends "${missing[@]}"

for tool in /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/pg_amcheck pgbench \
    psql sqlite3 python3 rsync setpriv runuser ps ip; do
    command -v "$tool" >/dev/null || { log "ERROR: $tool is still missing" >&2; exit 1; }
done
log "done"
