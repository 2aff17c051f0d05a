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
