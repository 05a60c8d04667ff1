#!/usr/bin/env bash
# build-debian-guest.sh: build the small Debian 12 guest the guest_agent molecule scenario boots
# (a real systemd + openssh-server + python3 system, deliberately WITHOUT qemu-guest-agent).
# The disk boots through the guest's own boot loader (GRUB, BIOS, MBR partition table), so a kernel
# argument set the Debian way (/etc/default/grub.d + update-grub) really reaches the guest's kernel.
# The result is reused while this script is unchanged.
#
# Usage: build-debian-guest.sh [OUTDIR]     (default /var/cache/pagefusion-test/debian12-grub)
# Output: OUTDIR/disk.qcow2    MBR disk: partition 1 (from 1 MiB) is ext4 (root=UUID=..., /dev/vda1),
#                              GRUB's boot.img in the MBR and its core.img in the gap behind it
#         OUTDIR/vmlinuz, OUTDIR/initrd.img   for libvirt direct kernel boot (root=/dev/vda1) when
#                                             the boot loader does not matter
#         OUTDIR/id_ed25519(.pub)             root's SSH key pair for the tests (made per build)
#         OUTDIR/.stamp
# OUTDIR is a symlink to a version directory beside it (.NAME.v.XXXXXX): a rebuild makes a new one
# and swaps the link in one rename, so a reader never sees half a build. The version it replaces is
# deleted: overlays made on it are stale afterwards (as they would be after any rebuild).
#
# Guests never write to disk.qcow2: each test VM gets its own qcow2 overlay on top of it.
#
# Environment:
#   PF_DEBIAN_MIRROR     (default http://deb.debian.org/debian)
#   PF_DEBIAN_SUITE      (default bookworm)
#   PF_GUEST_REBUILD=1   rebuild even when the stamp matches
set -euo pipefail

OUTDIR="${1:-/var/cache/pagefusion-test/debian12-grub}"
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
for bin in debootstrap mkfs.ext4 qemu-img ssh-keygen sha256sum flock chroot mount umount numfmt dd; do
    command -v "${bin}" >/dev/null 2>&1 \
        || die "${bin} not found (apt-get install -y debootstrap e2fsprogs qemu-utils openssh-client)"
done

STAMP="$(printf '%s %s %s %s' "$(sha256sum "${SELF}" | cut -d' ' -f1)" "${MIRROR}" "${SUITE}" "${SIZE}" \
    | sha256sum | cut -d' ' -f1)"

PARENT="$(dirname "${OUTDIR}")"
NAME="$(basename "${OUTDIR}")"
install -d -m 0755 "${PARENT}"
# The lock sits beside OUTDIR: OUTDIR itself is swapped by the build.
exec 9>"${PARENT}/.${NAME}.lock"
flock 9

if [[ ${PF_GUEST_REBUILD:-0} != 1 && -s ${OUTDIR}/disk.qcow2 && -s ${OUTDIR}/vmlinuz \
    && -s ${OUTDIR}/initrd.img && -s ${OUTDIR}/id_ed25519 \
    && -r ${OUTDIR}/.stamp && "$(cat "${OUTDIR}/.stamp")" == "${STAMP}" ]]; then
    log "up to date: ${OUTDIR}"
    exit 0
fi

WORK="$(mktemp -d "${PARENT}/.${NAME}.build.XXXXXX")"
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

# GRUB settings of the test image (a drop-in, as an admin would write one): serial console, no menu
# delay. The grub.cfg written here boots the first time only; update-grub in the guest regenerates it.
write_grub_config() {
    cat >"${ROOTFS}/etc/default/grub.d/10-pagefusion-test.cfg" <<'EOF'
# pagefusion.core test image: the console is the serial port (the domain logs it to a file).
GRUB_TIMEOUT=0
GRUB_CMDLINE_LINUX="console=ttyS0"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
EOF
    install -d -m 0755 "${ROOTFS}/boot/grub/i386-pc"
    cp "${ROOTFS}"/usr/lib/grub/i386-pc/*.mod "${ROOTFS}"/usr/lib/grub/i386-pc/*.lst \
        "${ROOTFS}"/usr/lib/grub/i386-pc/boot.img "${ROOTFS}/boot/grub/i386-pc/"
    cat >"${ROOTFS}/boot/grub/grub.cfg" <<EOF
# Written by build-debian-guest.sh for the first boot; update-grub in the guest replaces it.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root ${ROOT_UUID}
menuentry 'Debian GNU/Linux' {
    linux /boot/vmlinuz-${KVER} root=UUID=${ROOT_UUID} ro console=ttyS0 quiet
    initrd /boot/initrd.img-${KVER}
}
EOF
    # What grub-install does on a BIOS disk: core.img (with the modules that read the root
    # partition) goes into the gap behind the MBR, where boot.img's default sector pointers look.
    chroot "${ROOTFS}" grub-mkimage -O i386-pc -o /boot/grub/i386-pc/core.img \
        -p '(hd0,msdos1)/boot/grub' biosdisk part_msdos ext2
    printf '%s\n' 'grub-pc grub-pc/install_devices multiselect /dev/vda' \
        | chroot "${ROOTFS}" debconf-set-selections
}

# The raw disk: an MBR partition table (sfdisk of the tree itself), the ext4 file system made with
# mkfs.ext4 -d into partition 1, boot.img's code (first 440 bytes) in the MBR, core.img from sector 1.
make_disk() {
    local size_bytes part_bytes
    size_bytes="$(numfmt --from=iec "${SIZE}")"
    part_bytes=$((size_bytes - 1048576))
    log "making the disk (${SIZE}): MBR, ext4 partition, GRUB"
    truncate -s "${part_bytes}" "${WORK}/root.ext4"
    mkfs.ext4 -q -L pf-root -U "${ROOT_UUID}" -d "${ROOTFS}" "${WORK}/root.ext4" \
        || die "mkfs.ext4 -d failed (e2fsprogs >= 1.43 needed)"
    truncate -s "${size_bytes}" "${ROOTFS}/disk.raw"
    printf 'label: dos\nstart=2048, type=83, bootable\n' | chroot "${ROOTFS}" sfdisk -q /disk.raw \
        || die "sfdisk could not write the partition table"
    mv "${ROOTFS}/disk.raw" "${WORK}/disk.raw"
    dd if="${ROOTFS}/boot/grub/i386-pc/boot.img" of="${WORK}/disk.raw" bs=440 count=1 conv=notrunc status=none
    dd if="${ROOTFS}/boot/grub/i386-pc/core.img" of="${WORK}/disk.raw" bs=512 seek=1 conv=notrunc status=none
    dd if="${WORK}/root.ext4" of="${WORK}/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
    rm -f "${WORK}/root.ext4"
}

# Point OUTDIR at VERSION in one rename, then delete the version it pointed to before.
publish() {
    local version="$1" previous=""
    if [[ -L ${OUTDIR} ]]; then
        previous="$(readlink -f "${OUTDIR}")"
    elif [[ -e ${OUTDIR} ]]; then
        previous="$(mktemp -d "${PARENT}/.${NAME}.old.XXXXXX")"
        rmdir "${previous}"
        mv "${OUTDIR}" "${previous}"
    fi
    ln -sfn "$(basename "${version}")" "${PARENT}/.${NAME}.link"
    mv -T "${PARENT}/.${NAME}.link" "${OUTDIR}"
    if [[ -n ${previous} && ${previous} != "${version}" ]]; then
        rm -rf "${previous}"
    fi
}

started=${SECONDS}

# --- 1. debootstrap: minbase + what Ansible needs over SSH ------------------------------------
log "debootstrap ${SUITE} from ${MIRROR} (minbase + systemd, udev, openssh-server, python3, python3-apt, fdisk)"
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,udev,dbus,openssh-server,python3,python3-apt,ca-certificates,iproute2,fdisk \
    "${SUITE}" "${ROOTFS}" "${MIRROR}" >"${WORK}/debootstrap.log" 2>&1 \
    || { tail -n 30 "${WORK}/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# --- 2. the kernel (and its initramfs) and GRUB installed inside the tree ---------------------
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
# grub-pc must not install itself anywhere from the chroot (its /dev is the host's): no install
# devices while apt runs; the guest's own disk is named afterwards, for later grub-pc upgrades.
printf '%s\n' 'grub-pc grub-pc/install_devices multiselect' 'grub-pc grub-pc/install_devices_empty boolean true' \
    | chroot "${ROOTFS}" debconf-set-selections
log "installing linux-image-cloud-amd64 and grub-pc in the tree"
chroot "${ROOTFS}" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
    apt-get install -y -q --no-install-recommends linux-image-cloud-amd64 initramfs-tools grub-pc \
    >"${WORK}/kernel.log" 2>&1 \
    || { tail -n 30 "${WORK}/kernel.log" >&2; die "installing the kernel failed (log above)"; }
chroot "${ROOTFS}" apt-get clean
rm -f "${ROOTFS}/usr/sbin/policy-rc.d"
for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}"
done
MOUNTS=()

# --- 3. configuration -------------------------------------------------------------------------
ROOT_UUID="$(cat /proc/sys/kernel/random/uuid)"
KVER="$(basename "$(ls "${ROOTFS}"/boot/vmlinuz-*)" | sed 's/^vmlinuz-//')"
echo pf-debian12 >"${ROOTFS}/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpf-debian12\n' >"${ROOTFS}/etc/hosts"
printf 'UUID=%s\t/\text4\terrors=remount-ro\t0\t1\n' "${ROOT_UUID}" >"${ROOTFS}/etc/fstab"
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
write_grub_config
cp "${ROOTFS}"/boot/vmlinuz-* "${WORK}/vmlinuz"
cp "${ROOTFS}"/boot/initrd.img-* "${WORK}/initrd.img"
chmod 0644 "${WORK}/vmlinuz" "${WORK}/initrd.img"
rm -f "${ROOTFS}"/var/cache/apt/*.bin

# --- 4. the disk: MBR, partition 1 = ext4 made straight from the tree (no loop device), GRUB ---
make_disk
qemu-img convert -O qcow2 "${WORK}/disk.raw" "${WORK}/disk.qcow2"
chmod 0644 "${WORK}/disk.qcow2" "${WORK}/id_ed25519.pub"
chmod 0600 "${WORK}/id_ed25519"

# --- 5. publish: a fresh version directory, then OUTDIR swapped to it in one rename -----------
VERSION="$(mktemp -d "${PARENT}/.${NAME}.v.XXXXXX")"
chmod 0755 "${VERSION}"
for f in disk.qcow2 vmlinuz initrd.img id_ed25519 id_ed25519.pub; do
    mv "${WORK}/${f}" "${VERSION}/${f}"
done
echo "${STAMP}" >"${VERSION}/.stamp"
publish "${VERSION}"
log "built ${OUTDIR} -> ${VERSION} in $((SECONDS - started)) s"
