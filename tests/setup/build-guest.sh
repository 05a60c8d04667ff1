#!/usr/bin/env bash
# build-guest.sh: build the tiny test guest (Debian cloud kernel + busybox initramfs) used by
# the pagefusion.core integration tests. The result is reused while this script is unchanged.
#
# Usage: build-guest.sh [OUTDIR]      (default /var/cache/pagefusion-test/guest)
# Output: OUTDIR/vmlinuz, OUTDIR/initrd.gz, OUTDIR/kernel-version, OUTDIR/.stamp
#
# Environment:
#   PF_GUEST_KERNEL_PKG  concrete kernel package (default: what linux-image-cloud-amd64 depends on)
#   PF_GUEST_KERNEL_DEB  path to an already downloaded linux-image-*.deb (skips apt-get download)
#   PF_GUEST_REBUILD=1   rebuild even when the stamp matches
set -euo pipefail

OUTDIR="${1:-/var/cache/pagefusion-test/guest}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"

die() {
    printf 'build-guest.sh: error: %s\n' "$*" >&2
    exit 1
}

log() {
    printf 'build-guest.sh: %s\n' "$*" >&2
}

[[ ${EUID} -eq 0 ]] || die "must run as root (dpkg -x, mknod, apt-get download)"
for bin in cpio gzip sha256sum flock apt-get apt-cache dpkg; do
    command -v "${bin}" >/dev/null 2>&1 || die "${bin} not found (apt-get install -y cpio gzip)"
done

STAMP="$(sha256sum "${SELF}" | cut -d' ' -f1)"

install -d -m 0755 "${OUTDIR}"
exec 9>"${OUTDIR}/.lock"
flock 9

if [[ ${PF_GUEST_REBUILD:-0} != 1 && -s ${OUTDIR}/vmlinuz && -s ${OUTDIR}/initrd.gz \
    && -r ${OUTDIR}/.stamp && "$(cat "${OUTDIR}/.stamp")" == "${STAMP}" ]]; then
    log "up to date: ${OUTDIR}"
    exit 0
fi

WORK="$(mktemp -d "${OUTDIR}/.build.XXXXXX")"
chmod 0755 "${WORK}"
cleanup() {
    rm -rf "${WORK}"
}
trap cleanup EXIT

# --- 1. the kernel: apt-get download + dpkg -x, never installed on the host --------------------
deb="${PF_GUEST_KERNEL_DEB:-}"
if [[ -z ${deb} ]]; then
    pkg="${PF_GUEST_KERNEL_PKG:-}"
    if [[ -z ${pkg} ]]; then
        pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
            | awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')"
    fi
    if [[ -z ${pkg} ]]; then
        log "linux-image-cloud-amd64 unknown to apt-cache; running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
            | awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }')"
    fi
    [[ -n ${pkg} ]] || die "cannot resolve the concrete package behind linux-image-cloud-amd64"
    install -d -m 0755 "${WORK}/dl"
    # apt drops privileges to _apt for downloads; let it write there (avoids a warning).
    if getent passwd _apt >/dev/null 2>&1; then
        chown _apt "${WORK}/dl"
    fi
    log "downloading ${pkg}"
    (cd "${WORK}/dl" && apt-get download -q "${pkg}" >&2) || die "apt-get download ${pkg} failed"
    deb="$(find "${WORK}/dl" -maxdepth 1 -name '*.deb' -print -quit)"
    [[ -n ${deb} ]] || die "apt-get download ${pkg} produced no .deb"
fi
[[ -r ${deb} ]] || die "kernel package ${deb} not readable"
log "unpacking $(basename "${deb}")"
dpkg -x "${deb}" "${WORK}/kernel"
vmlinuz="$(find "${WORK}/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit)"
[[ -n ${vmlinuz} ]] || die "no boot/vmlinuz-* in ${deb}"
kver="${vmlinuz##*/vmlinuz-}"
moddir="${WORK}/kernel/lib/modules/${kver}"
[[ -d ${moddir} ]] || die "no lib/modules/${kver} in ${deb}"

# --- 2. busybox-static: the host's if installed, else unpacked from its package ----------------
busybox=""
if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    busybox=/bin/busybox
else
    install -d -m 0755 "${WORK}/bbdl"
    if getent passwd _apt >/dev/null 2>&1; then
        chown _apt "${WORK}/bbdl"
    fi
    log "busybox-static not installed; downloading it"
    (cd "${WORK}/bbdl" && apt-get download -q busybox-static >&2) \
        || die "apt-get download busybox-static failed"
    dpkg -x "$(find "${WORK}/bbdl" -maxdepth 1 -name '*.deb' -print -quit)" "${WORK}/bb"
    busybox="${WORK}/bb/bin/busybox"
fi
[[ -x ${busybox} ]] || die "no busybox binary"

# --- 3. the initramfs tree ----------------------------------------------------------------------
root="${WORK}/initramfs"
install -d -m 0755 "${root}"/{bin,dev,proc,sys,run,tmp,pf,lib/modules}
install -m 0755 "${busybox}" "${root}/bin/busybox"
ln -s busybox "${root}/bin/sh"
mknod -m 0600 "${root}/dev/console" c 5 1
mknod -m 0666 "${root}/dev/null" c 1 3

# The power button is a module in the Debian cloud kernel (CONFIG_ACPI_BUTTON=m), and its input
# events need evdev (CONFIG_INPUT_EVDEV=m). Neither has module dependencies.
for mod in kernel/drivers/acpi/button.ko kernel/drivers/input/evdev.ko; do
    src=""
    for cand in "${moddir}/${mod}" "${moddir}/${mod}.xz" "${moddir}/${mod}.zst" "${moddir}/${mod}.gz"; do
        if [[ -e ${cand} ]]; then
            src="${cand}"
            break
        fi
    done
    [[ -n ${src} ]] || die "module ${mod} missing from ${kver} (built in? check the config)"
    case "${src}" in
        *.ko) install -m 0644 "${src}" "${root}/lib/modules/" ;;
        *) die "compressed module ${src}: busybox insmod cannot load it" ;;
    esac
done

cat >"${root}/init" <<'INIT'
#!/bin/sh
# /init of the pagefusion test guest (busybox sh, PID 1). Kernel cmdline options:
#   pf_fill_mib=N     N MiB of content identical in every guest (default 64)
#   pf_unique_mib=N   N MiB of random content, unique per guest (default 0)
#   pf_ignore_acpi=1  ignore the ACPI power button (virsh shutdown does nothing)
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin
exec </dev/console >/dev/console 2>&1

fill=64
unique=0
ignore_acpi=0
set -f
# shellcheck disable=SC2013 # words, not lines, wanted
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        pf_fill_mib=*) fill="${arg#*=}" ;;
        pf_unique_mib=*) unique="${arg#*=}" ;;
        pf_ignore_acpi=*) ignore_acpi="${arg#*=}" ;;
    esac
done
set +f
case "$fill" in ''|*[!0-9]*) echo "PF-WARN bad pf_fill_mib=$fill, using 64"; fill=64 ;; esac
case "$unique" in ''|*[!0-9]*) echo "PF-WARN bad pf_unique_mib=$unique, using 0"; unique=0 ;; esac
echo "PF-BOOT fill_mib=$fill unique_mib=$unique ignore_acpi=$ignore_acpi uptime=$(cut -d" " -f1 /proc/uptime) $(awk '/^MemTotal|^MemAvailable/ { printf "%s%s ", $1, $2 }' /proc/meminfo)"

insmod /lib/modules/evdev.ko
insmod /lib/modules/button.ko

# Power button: any event on its evdev node means "pressed" -> power off at once.
if [ "$ignore_acpi" = 1 ]; then
    echo "PF-ACPI ignoring the power button"
else
    watched=0
    tries=0
    while [ "$watched" = 0 ] && [ "$tries" -lt 20 ]; do
        for d in /sys/class/input/input*; do
            [ -r "$d/name" ] || continue
            case "$(cat "$d/name")" in
                *"Power Button"*) ;;
                *) continue ;;
            esac
            for e in "$d"/event*; do
                [ -e "$e" ] || continue
                node="/dev/input/${e##*/}"
                [ -c "$node" ] || continue
                (
                    dd if="$node" of=/dev/null bs=24 count=1 2>/dev/null
                    echo "PF-POWEROFF power button pressed"
                    poweroff -f
                ) &
                echo "PF-ACPI watching $node uptime=$(cut -d" " -f1 /proc/uptime)"
                watched=1
            done
        done
        [ "$watched" = 1 ] && break
        tries=$((tries + 1))
        sleep 0.1
    done
    [ "$watched" = 1 ] || echo "PF-WARN no power button input device found"
fi

mount -t tmpfs -o "size=$((fill + unique + 4))m,mode=0700" pf /pf
# Identical across guests, distinct per 4 KiB page, never zero: page i holds its own number.
: >/pf/fill
i=0
while [ "$i" -lt "$fill" ]; do
    printf 'pagefusion-fill %-4079s\n' $(seq $((i * 256)) $((i * 256 + 255))) >>/pf/fill
    i=$((i + 1))
done
if [ "$unique" -gt 0 ]; then
    dd if=/dev/urandom of=/pf/unique bs=1048576 count="$unique" 2>/dev/null
fi
echo "PF-FILLED $(stat -c %s /pf/fill) bytes identical, $unique MiB unique, uptime=$(cut -d" " -f1 /proc/uptime) $(awk '/^MemAvailable/ { printf "%s%s", $1, $2 }' /proc/meminfo)"
echo "PF-READY"

while :; do
    sleep 3600
done
INIT
chmod 0755 "${root}/init"

# --- 4. pack, then move into place (guests already running keep their copy in RAM) ------------
(cd "${root}" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    | gzip -9n >"${WORK}/initrd.gz"
install -m 0644 "${vmlinuz}" "${WORK}/vmlinuz"
chmod 0644 "${WORK}/initrd.gz"
mv -f "${WORK}/vmlinuz" "${OUTDIR}/vmlinuz"
mv -f "${WORK}/initrd.gz" "${OUTDIR}/initrd.gz"
printf '%s\n' "${kver}" >"${OUTDIR}/kernel-version"
printf '%s\n' "${STAMP}" >"${OUTDIR}/.stamp"
chmod 0644 "${OUTDIR}/kernel-version" "${OUTDIR}/.stamp"
chmod 0755 "${OUTDIR}"
log "built ${OUTDIR} (kernel ${kver})"
