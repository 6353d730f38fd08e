#!/usr/bin/env bash
# Tear down what .ci/slurm/up.sh started (safe to run whatever state up.sh reached, and twice): cancel the
# jobs, stop slurmd, slurmctld, slurmdbd, MariaDB and (if up.sh started it) munged by their pid files,
# remove the config files up.sh wrote and its state directory.
set -uo pipefail
STATE=${LACY_SLURM_STATE:-/tmp/lacy-slurm}
say() { echo "[slurm down $(date +%T)] $*"; }
stop() {  # stop NAME PIDFILE: SIGTERM, then SIGKILL after 20 s
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || { say "stopped $name"; return 0; }; sleep 1; done
    kill -9 "$pid" 2>/dev/null; say "killed $name"
}
if [ -d "$STATE" ]; then
    command -v scancel >/dev/null && [ -s "$STATE/slurmctld.pid" ] && timeout 20 scancel --user=root 2>/dev/null
    stop slurmd "$STATE/slurmd.pid"
    stop slurmctld "$STATE/slurmctld.pid"
    stop slurmdbd "$STATE/slurmdbd.pid"
    stop MariaDB "$STATE/mysql/mysqld.pid"
    [ -s "$STATE/munged.ours" ] && stop munged "$(cat "$STATE/munged.ours")"
fi
for conf in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    [ -e "$conf" ] && grep -q "^# lacy-repro CI" "$conf" && rm -f "$conf"
done
rm -rf "$STATE"
say "down"
