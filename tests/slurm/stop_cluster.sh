#!/usr/bin/env bash
# Stop exactly the daemons tests/slurm/start_cluster.sh started (by the PIDs it recorded).
set -u
STATE=${MMNEURO_SLURM_DIR:-/tmp/mmneuro-slurm}
for name in slurmd slurmctld munged; do
    pidfile="$STATE/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        echo "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
done
# Remove the copy of our slurm.conf at Slurm's default path (never a real cluster's): left behind, it
# makes every Slurm client call wait ~9 s for a controller that is gone, and Snakemake's Slurm plugin
# runs `scontrol show config` each time it loads, i.e. on every snakemake command on this machine.
if grep -qs '^ClusterName=mmneuro-test$' /etc/slurm/slurm.conf; then
    rm -f /etc/slurm/slurm.conf
fi
