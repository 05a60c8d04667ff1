#!/usr/bin/env bash
# build-debian-guest.sh: build the small Debian 12 guest the guest_agent molecule scenario boots
# (a real systemd + openssh-server + python3 system, deliberately WITHOUT qemu-guest-agent).
# The result is reused while this script is unchanged.
#
# Usage: build-debian-guest.sh [OUTDIR]     (default /var/cache/pagefusion-test/debian12)
# Output: OUTDIR/disk.qcow2    ext4 file system on the whole disk (no partition table), root=/dev/vda
#         OUTDIR/vmlinuz, OUTDIR/initrd.img   for libvirt direct kernel boot
#         OUTDIR/id_ed25519(.pub)             root's SSH key pair for the tests (made per build)
#         OUTDIR/.stamp
#
# Guests never write to disk.qcow2: each test VM gets its own qcow2 overlay on top of it.
#
# Environment:
#   PF_DEBIAN_MIRROR     (default http://deb.debian.org/debian)
#   PF_DEBIAN_SUITE      (default bookworm)
#   PF_GUEST_REBUILD=1   rebuild even when the stamp matches
set -euo pipefail

OUTDIR="${1:-/var/cache/pagefusion-test/debian12}"
MIRROR="${PF_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${PF_DEBIAN_SUITE:-bookworm}"
SIZE="${PF_DEBIAN_DISK_SIZE:-3G}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"

die() {
    printf 'build-debian-guest.sh: error: %s\n' "$*" >&2
    exit 1
}

log() {
    printf 'build-debian-guest.sh: %s\n' "$*" >&2
}

[[ ${EUID} -eq 0 ]] || die "must run as root (debootstrap, chroot, mkfs.ext4 -d)"
PATH="${PATH}:/usr/sbin:/sbin"
for bin in debootstrap mkfs.ext4 qemu-img ssh-keygen sha256sum flock chroot mount umount; do
    command -v "${bin}" >/dev/null 2>&1 \
        || die "${bin} not found (apt-get install -y debootstrap e2fsprogs qemu-utils openssh-client)"
done

STAMP="$(printf '%s %s %s %s' "$(sha256sum "${SELF}" | cut -d' ' -f1)" "${MIRROR}" "${SUITE}" "${SIZE}" \
    | sha256sum | cut -d' ' -f1)"

install -d -m 0755 "${OUTDIR}"
exec 9>"${OUTDIR}/.lock"
flock 9

if [[ ${PF_GUEST_REBUILD:-0} != 1 && -s ${OUTDIR}/disk.qcow2 && -s ${OUTDIR}/vmlinuz \
    && -s ${OUTDIR}/initrd.img && -s ${OUTDIR}/id_ed25519 \
    && -r ${OUTDIR}/.stamp && "$(cat "${OUTDIR}/.stamp")" == "${STAMP}" ]]; then
    log "up to date: ${OUTDIR}"
    exit 0
fi

WORK="$(mktemp -d "${OUTDIR}/.build.XXXXXX")"
chmod 0755 "${WORK}"
ROOTFS="${WORK}/rootfs"
MOUNTS=()
cleanup() {
    local m
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m="${MOUNTS[i]}"
        umount -l "${m}" 2>/dev/null || true
    done
    rm -rf "${WORK}"
}
trap cleanup EXIT

started=${SECONDS}

# --- 1. debootstrap: minbase + what Ansible needs over SSH ------------------------------------
log "debootstrap ${SUITE} from ${MIRROR} (minbase + systemd, udev, openssh-server, python3, python3-apt)"
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,udev,dbus,openssh-server,python3,python3-apt,ca-certificates,iproute2 \
    "${SUITE}" "${ROOTFS}" "${MIRROR}" >"${WORK}/debootstrap.log" 2>&1 \
    || { tail -n 30 "${WORK}/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# --- 2. the kernel (and its initramfs) installed inside the tree -----------------------------
for m in proc sys dev dev/pts; do
    install -d "${ROOTFS}/${m}"
done
mount -t proc proc "${ROOTFS}/proc" && MOUNTS+=("${ROOTFS}/proc")
mount -t sysfs sysfs "${ROOTFS}/sys" && MOUNTS+=("${ROOTFS}/sys")
mount --bind /dev "${ROOTFS}/dev" && MOUNTS+=("${ROOTFS}/dev")
mount --bind /dev/pts "${ROOTFS}/dev/pts" && MOUNTS+=("${ROOTFS}/dev/pts")
cp /etc/resolv.conf "${ROOTFS}/etc/resolv.conf"
# No service starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"${ROOTFS}/usr/sbin/policy-rc.d"
chmod 0755 "${ROOTFS}/usr/sbin/policy-rc.d"
# The guest's package lists are fetched here, on the host, where apt is fast (TCG guests take minutes).
printf 'deb %s %s main\ndeb %s %s-updates main\n' "${MIRROR}" "${SUITE}" "${MIRROR}" "${SUITE}" \
    >"${ROOTFS}/etc/apt/sources.list"
chroot "${ROOTFS}" apt-get update -q >"${WORK}/apt-update.log" 2>&1 \
    || { tail -n 30 "${WORK}/apt-update.log" >&2; die "apt-get update in the tree failed (log above)"; }
log "installing linux-image-cloud-amd64 in the tree"
chroot "${ROOTFS}" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
    apt-get install -y -q --no-install-recommends linux-image-cloud-amd64 initramfs-tools \
    >"${WORK}/kernel.log" 2>&1 \
    || { tail -n 30 "${WORK}/kernel.log" >&2; die "installing the kernel failed (log above)"; }
chroot "${ROOTFS}" apt-get clean
rm -f "${ROOTFS}/usr/sbin/policy-rc.d"
for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}"
done
MOUNTS=()

# --- 3. configuration -------------------------------------------------------------------------
echo pf-debian12 >"${ROOTFS}/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpf-debian12\n' >"${ROOTFS}/etc/hosts"
printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' >"${ROOTFS}/etc/fstab"
# QEMU user networking: DHCP from 10.0.2.2, DNS at 10.0.2.3. The NIC is the first (and only) one.
cat >"${ROOTFS}/etc/systemd/network/20-user-net.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
chroot "${ROOTFS}" systemctl enable systemd-networkd.service >/dev/null 2>&1
echo 'nameserver 10.0.2.3' >"${ROOTFS}/etc/resolv.conf"
# apt's timers would hold the dpkg lock while the role runs; TCG makes everything slow.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    systemd-networkd-wait-online.service systemd-timesyncd.service; do
    ln -sf /dev/null "${ROOTFS}/etc/systemd/system/${unit}"
done
# SSH: key only, for root; the key pair is made here, per build.
ssh-keygen -q -t ed25519 -N '' -C pagefusion-test -f "${WORK}/id_ed25519"
install -d -m 0700 "${ROOTFS}/root/.ssh"
install -m 0600 "${WORK}/id_ed25519.pub" "${ROOTFS}/root/.ssh/authorized_keys"
cat >"${ROOTFS}/etc/ssh/sshd_config.d/pagefusion-test.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
passwd -R "${ROOTFS}" -l root >/dev/null
cp "${ROOTFS}"/boot/vmlinuz-* "${WORK}/vmlinuz"
cp "${ROOTFS}"/boot/initrd.img-* "${WORK}/initrd.img"
chmod 0644 "${WORK}/vmlinuz" "${WORK}/initrd.img"
rm -f "${ROOTFS}"/var/cache/apt/*.bin

# --- 4. the disk: ext4 made straight from the tree (no loop device needed), then qcow2 ---------
log "making the ext4 image (${SIZE})"
truncate -s "${SIZE}" "${WORK}/disk.raw"
mkfs.ext4 -q -L pf-root -d "${ROOTFS}" "${WORK}/disk.raw" \
    || die "mkfs.ext4 -d failed (e2fsprogs >= 1.43 needed)"
qemu-img convert -O qcow2 "${WORK}/disk.raw" "${WORK}/disk.qcow2"
chmod 0644 "${WORK}/disk.qcow2" "${WORK}/id_ed25519.pub"
chmod 0600 "${WORK}/id_ed25519"

for f in disk.qcow2 vmlinuz initrd.img id_ed25519 id_ed25519.pub; do
    mv -f "${WORK}/${f}" "${OUTDIR}/${f}"
done
echo "${STAMP}" >"${OUTDIR}/.stamp"
log "built ${OUTDIR} in $((SECONDS - started)) s"
