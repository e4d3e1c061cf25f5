#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the `slurm` tests and for trying the cluster path on a laptop.
#
#   tools/slurm/local-cluster.sh up       install slurm-wlm and munge with apt when missing (needs root), write a
#                                          config for this machine's cores and memory, start munged, slurmctld and
#                                          slurmd, wait until the node is idle
#   tools/slurm/local-cluster.sh status   the node and the queue
#   tools/slurm/local-cluster.sh down     stop slurmd, slurmctld and (if this script started it) munged
#   tools/slurm/local-cluster.sh env      the line to paste so sbatch/squeue/srun use this cluster
#
# Everything lives in $COMPLEXFACE_SLURM_DIR (default /tmp/complexface-slurm): slurm.conf, state, logs, pid files.
# Slurm's client commands find the cluster through SLURM_CONF: `eval "$(tools/slurm/local-cluster.sh env)"`.
# The daemons talk over 127.0.0.1 (node address and controller address); jobs run as the submitting user.
set -euo pipefail

DIR="${COMPLEXFACE_SLURM_DIR:-/tmp/complexface-slurm}"
CONF="$DIR/slurm.conf"
NODE="$(hostname -s)"
PARTITION=debug
WAIT_S="${COMPLEXFACE_SLURM_WAIT_S:-60}"
export SLURM_CONF="$CONF"

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are not installed; as root: apt-get install -y slurm-wlm munge"
    say "installing slurm-wlm and munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if munge -n >/dev/null 2>&1 </dev/null; then return; fi  # a munged is already serving this machine
    [ -f /etc/munge/munge.key ] || { say "creating /etc/munge/munge.key"; mungekey --create 2>/dev/null || \
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    if id munge >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
        chmod 0400 /etc/munge/munge.key
        runuser -u munge -- /usr/sbin/munged
    else
        /usr/sbin/munged
    fi
    for _ in $(seq 50); do
        if munge -n >/dev/null 2>&1 </dev/null; then
            cp /run/munge/munged.pid "$DIR/munged.pid" 2>/dev/null || pgrep -n -x munged > "$DIR/munged.pid"
            return
        fi
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

write_config() {
    local hw cpus sockets cores threads memory
    hw="$(slurmd -C | head -1)"
    cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")"
    sockets="$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")"
    cores="$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")"
    threads="$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")"
    memory="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
    memory=$(( memory * 9 / 10 ))  # leave the rest to the OS and the daemons
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF" <<CONF
# Written by tools/slurm/local-cluster.sh: one node ($NODE), one partition ($PARTITION), no accounting.
ClusterName=complexface
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobRequeue=1
KillWait=1                 # seconds from SIGTERM to SIGKILL when a job is cancelled or requeued
MinJobAge=600
SlurmctldPort=${COMPLEXFACE_SLURMCTLD_PORT:-6817}
SlurmdPort=${COMPLEXFACE_SLURMD_PORT:-6818}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 | tr -d '*'; }

up() {
    install_packages
    mkdir -p "$DIR"
    start_munge
    write_config
    pid_alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld -c -f "$CONF"   # -c: a fresh controller state
    pid_alive "$DIR/slurmd.pid" || /usr/sbin/slurmd -f "$CONF"
    local state=""
    for _ in $(seq $(( WAIT_S * 2 ))); do
        state="$(node_state)"
        case "$state" in
            idle|mixed|allocated) say "node $NODE is $state; partition $PARTITION; SLURM_CONF=$CONF"; return ;;
            down|drained|draining|drain) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    say "node $NODE did not become idle within ${WAIT_S}s (state: ${state:-none}); logs in $DIR/log"
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
}

stop_pid() {  # stop_pid FILE NAME: SIGTERM, then SIGKILL after 10 s
    pid_alive "$1" || { rm -f "$1"; return 0; }
    local pid; pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }; sleep 0.1; done
    say "$2 ($pid) ignored SIGTERM; killing it"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

down() {
    if [ -f "$CONF" ] && command -v scancel >/dev/null; then
        scancel --full --quiet --partition="$PARTITION" 2>/dev/null || true   # jobs end with their cluster
    fi
    stop_pid "$DIR/slurmd.pid" slurmd
    stop_pid "$DIR/slurmctld.pid" slurmctld
    pkill -f "slurmstepd.*$DIR" 2>/dev/null || true
    stop_pid "$DIR/munged.pid" munged
    say "stopped"
}

status() {
    [ -f "$CONF" ] || die "no cluster configured in $DIR (run: $0 up)"
    sinfo
    squeue
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
