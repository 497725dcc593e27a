#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the Slurm tests: munged, slurmctld
# and slurmd from Debian's packages, as root, without systemd, with a minimal slurm.conf (one
# node with this machine's CPUs, one partition, no cgroups, no accounting). Prints the
# daemons' process ids, which .ci/run stops at its end. Waits until the node takes jobs.
set -euo pipefail

host="$(hostname -s)"
cpus="$(nproc)"
state=/var/lib/slurm-ci
mkdir -p "$state/ctld" "$state/d" /var/log/slurm-ci /run/munge /etc/slurm
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm-ci/slurmctld.log
SlurmdLogFile=/var/log/slurm-ci/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown root:root /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key
munged --force --key-file=/etc/munge/munge.key --socket=/run/munge/munge.socket.2 \
    --pid-file=/run/munge/munged.pid
munge_pid="$(cat /run/munge/munged.pid)"

slurmctld -D -i >/var/log/slurm-ci/slurmctld.out 2>&1 &
ctld_pid=$!
slurmd -D >/var/log/slurm-ci/slurmd.out 2>&1 &
d_pid=$!

for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "$munge_pid $ctld_pid $d_pid"
        exit 0
    fi
    sleep 1
done
echo "slurm did not come up; logs:" >&2
tail -n 20 /var/log/slurm-ci/*.log /var/log/slurm-ci/*.out >&2 || true
kill "$munge_pid" "$ctld_pid" "$d_pid" 2>/dev/null || true
exit 1
