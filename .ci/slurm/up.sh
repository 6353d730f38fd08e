#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on this machine, as root, without systemd: Debian's slurm-wlm
# (22.05 on bookworm) with munge authentication and slurmdbd accounting in MariaDB (the Snakemake SLURM
# executor asks `sacct` for job states when it is installed). Every daemon's state, log and pid file lives
# in $LACY_SLURM_STATE (default /tmp/lacy-slurm); .ci/slurm/down.sh stops them and removes it again.
#
#   .ci/slurm/up.sh            # installs the packages if missing (about 1.5 min), then about 20 s
#   sinfo; sbatch --wrap hostname; sacct
#   .ci/slurm/down.sh
#
# The node gets this machine's CPUs and LACY_SLURM_MEM_MB of memory (default 8000): the `cluster` section
# of the workflow's config must not ask for more (config/config.yaml: 2 CPUs, 8000 MB).
set -euo pipefail
STATE=${LACY_SLURM_STATE:-/tmp/lacy-slurm}
CLUSTER=lacyci
HOST=$(hostname -s)
CPUS=${LACY_SLURM_CPUS:-$(nproc)}
MEM_MB=${LACY_SLURM_MEM_MB:-8000}
DB_PORT=${LACY_SLURM_DB_PORT:-3307}
[ "$(id -u)" = 0 ] || { echo "up.sh: run as root (it starts munged, MariaDB and the SLURM daemons)" >&2; exit 1; }
say() { echo "[slurm up $(date +%T)] $*"; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
    local limit=$1 what=$2; shift 2
    for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "up.sh: $what did not come up within ${limit}s" >&2
    for log in "$STATE"/*.log; do echo "--- $log"; tail -n 20 "$log"; done >&2
    return 1
}

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v mariadbd >/dev/null; then
    say "installing slurm-wlm, slurmdbd, munge, mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server >/dev/null
fi
if [ -e /etc/slurm/slurm.conf ] && ! grep -q "^# lacy-repro CI" /etc/slurm/slurm.conf; then
    echo "up.sh: /etc/slurm/slurm.conf exists and is not ours: not touching a configured cluster" >&2; exit 1
fi
if [ -e "$STATE" ]; then echo "up.sh: $STATE exists (a cluster is up? run .ci/slurm/down.sh)" >&2; exit 1; fi
mkdir -p "$STATE"/{ctld,spool,mysql}
chmod 755 "$STATE"

say "munge"
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file=/run/munge/lacy-ci.pid --log-file=/var/log/munge/lacy-ci.log
    echo /run/munge/lacy-ci.pid >"$STATE/munged.ours"
fi
wait_for 20 munged sh -c 'munge -n | unmunge'

say "MariaDB (port $DB_PORT, data in $STATE/mysql)"
chown mysql:mysql "$STATE/mysql"
mariadb-install-db --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
    --skip-test-db >"$STATE/mariadb-install.log" 2>&1
runuser -u mysql -- mariadbd --datadir="$STATE/mysql" --socket="$STATE/mysql/mysqld.sock" \
    --pid-file="$STATE/mysql/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --log-error="$STATE/mariadb.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
wait_for 60 MariaDB mariadb --socket="$STATE/mysql/mysqld.sock" -e 'select 1'
mariadb --socket="$STATE/mysql/mysqld.sock" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'lacy-ci';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'lacy-ci';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

say "slurmdbd"
cat >/etc/slurm/slurmdbd.conf <<CONF
# lacy-repro CI single-node cluster (.ci/slurm/up.sh)
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$STATE/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=lacy-ci
StorageLoc=slurm_acct_db
CONF
chmod 600 /etc/slurm/slurmdbd.conf
cat >/etc/slurm/slurm.conf <<CONF
# lacy-repro CI single-node cluster (.ci/slurm/up.sh): one node with this machine's $CPUS CPUs
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# a job finished or cancelled stays visible to squeue for 5 minutes (the executor's squeue status needs >= 2)
MinJobAge=300
# a job asking for more than any node has is refused at submission, not left PENDING (PartitionConfig)
EnforcePartLimits=ALL
# sacct shows the executor's --comment (rule and wildcards)
AccountingStoreFlags=job_comment
# scancel and time limits: SIGTERM, then SIGKILL 10 s later
KillWait=10
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
slurmdbd
wait_for 30 slurmdbd sh -c "sacctmgr -n list cluster >/dev/null"
sacctmgr -i add cluster "$CLUSTER" >/dev/null

say "slurmctld, slurmd"
slurmctld
slurmd
wait_for 60 "the node" sh -c "sinfo -h -N -o %t | grep -qx idle"
say "up: $(sinfo -h -N -o '%N %c CPUs %m MB %t')"
