#!/usr/bin/env bash
# start-libvirt.sh: start virtlogd, virtlockd and libvirtd by hand (no systemd on the test
# machines) and wait until qemu:///system answers. Idempotent: daemons already running are
# left alone. Must run as root.
#
# Environment:
#   PF_LIBVIRT_URI      URI to wait for (default qemu:///system)
#   PF_LIBVIRT_TIMEOUT  seconds to wait for the URI to answer (default 30)
set -euo pipefail

URI="${PF_LIBVIRT_URI:-qemu:///system}"
TIMEOUT="${PF_LIBVIRT_TIMEOUT:-30}"

die() {
    printf 'start-libvirt.sh: error: %s\n' "$*" >&2
    exit 1
}

log() {
    printf 'start-libvirt.sh: %s\n' "$*" >&2
}

[[ ${EUID} -eq 0 ]] || die "must run as root"

for bin in virtlogd virtlockd libvirtd virsh; do
    command -v "${bin}" >/dev/null 2>&1 || [[ -x /usr/sbin/${bin} ]] \
        || die "${bin} not found (install libvirt-daemon-system libvirt-clients qemu-system-x86)"
done
PATH="${PATH}:/usr/sbin:/sbin"

# is_running NAME: true when a process with exactly this name runs, preferring the pidfile.
is_running() {
    local name="$1" pidfile="/run/$1.pid" pid comm
    if [[ -r ${pidfile} ]]; then
        pid="$(cat "${pidfile}" 2>/dev/null || true)"
        if [[ ${pid} =~ ^[0-9]+$ ]] && [[ -r /proc/${pid}/comm ]]; then
            comm="$(cat "/proc/${pid}/comm" 2>/dev/null || true)"
            [[ ${comm} == "${name}" ]] && return 0
        fi
    fi
    pgrep -x "${name}" >/dev/null 2>&1
}

# 1. /dev/kvm: without udev it is root-only, and libvirt then re-probes QEMU for 4-12 s on
#    every capabilities call. Fix it before libvirtd caches its capabilities.
if [[ -e /dev/kvm ]]; then
    if getent group kvm >/dev/null 2>&1; then
        chgrp kvm /dev/kvm
    fi
    chmod 0660 /dev/kvm
fi

# 2. Directories the daemons (and the guests' QEMU, running as libvirt-qemu) need.
install -d -m 0755 /run/libvirt /var/log/libvirt /var/lib/libvirt
install -d -m 0711 /var/log/libvirt/qemu 2>/dev/null || true
install -d -m 0755 /var/lib/libvirt/qemu 2>/dev/null || true

# 3. Start the daemons that are not running. -d daemonizes; each writes /run/<name>.pid.
start_daemon() {
    local name="$1"
    if is_running "${name}"; then
        log "${name} already running"
        return 0
    fi
    # A stale pidfile from a killed daemon would make it refuse to start.
    rm -f "/run/${name}.pid"
    log "starting ${name}"
    "${name}" -d || die "${name} -d failed (exit $?)"
    local i
    for ((i = 0; i < 50; i++)); do
        is_running "${name}" && return 0
        sleep 0.1
    done
    die "${name} did not stay up (see its log under /var/log/libvirt or syslog)"
}

start_daemon virtlogd
start_daemon virtlockd
start_daemon libvirtd

# 4. Wait (bounded) until the URI answers.
deadline=$((SECONDS + TIMEOUT))
err=""
while :; do
    if err="$(virsh -c "${URI}" version 2>&1 >/dev/null)"; then
        log "${URI} is up"
        exit 0
    fi
    if ((SECONDS >= deadline)); then
        die "${URI} did not answer within ${TIMEOUT} s: ${err//$'\n'/ }"
    fi
    sleep 0.5
done
