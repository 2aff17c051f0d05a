#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine for the integration tests (no systemd needed).
#
#   source tests/slurm/start_cluster.sh     # exports SLURM_CONF; or run it and export yourself
#
# Writes slurm.conf for this host (node name from `hostname -s`, CPUs from nproc, memory from
# /proc/meminfo) into $MMNEURO_SLURM_DIR (default /tmp/mmneuro-slurm), starts munged, slurmctld
# and slurmd, records their PIDs for stop_cluster.sh, and waits until sinfo shows the node idle.
# Installs slurmctld/slurmd/munge/slurm-client with apt-get if they are missing (needs root).
set -euo pipefail

STATE=${MMNEURO_SLURM_DIR:-/tmp/mmneuro-slurm}
mkdir -p "$STATE"/ctld "$STATE"/spool

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge with apt-get ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd munge slurm-client >/dev/null
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

cat > "$STATE/slurm.conf" <<CONF
ClusterName=mmneuro-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No accounting daemon: job states stay visible to squeue/scontrol for an hour after they end,
# and completions are logged to a text file the tests read.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
MinJobAge=3600
KillWait=5
InactiveLimit=0
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$STATE/slurm.conf"
# Job steps started inside batch jobs (srun) do not always inherit SLURM_CONF: also install the file
# at Slurm's default path, unless a real cluster's configuration is already there.
if [ ! -e /etc/slurm/slurm.conf ] || grep -q '^ClusterName=mmneuro-test$' /etc/slurm/slurm.conf; then
    mkdir -p /etc/slurm && cp "$SLURM_CONF" /etc/slurm/slurm.conf
fi

# munge: the key is created by the Debian package; the socket folder is not (no systemd here).
mkdir -p /run/munge && chown munge:munge /run/munge
if [ ! -S /run/munge/munge.socket.2 ]; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.25; done
    cp /run/munge/munged.pid "$STATE/munged.pid"
fi
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null || true)
    if [ "$state" = "idle" ]; then
        echo "slurm cluster up: node $HOST ($CPUS CPUs, $MEM_MB MB), SLURM_CONF=$SLURM_CONF"
        exit 0 2>/dev/null || return 0
    fi
    sleep 0.5
done
echo "slurm node $HOST did not become idle; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
exit 1 2>/dev/null || return 1
