#!/usr/bin/env bash
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# images.sh base|hv|ee: build (or find cached) one of the ee stage's podman images; prints its name.
#   base  Debian 12 minbase + python3, pip and this machine's CA bundle: the EE's base image (no registry here)
#   hv    Debian 12 with systemd, sshd, libvirtd and QEMU: a managed hypervisor host
#   ee    the execution environment: ansible-builder on ee/execution-environment.yml over `base`, with this
#         collection from its built tarball
# Each image is tagged with a hash of what it is built from (the function that builds it, its input files), so a
# rerun with nothing changed builds nothing.
# Run as root, with CONTAINERS_CONF set (tests/ee/containers.conf).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=/var/cache/pagefusion-test/ee
MIRROR=http://deb.debian.org/debian
VENV="$ROOT/.venv"

log() { printf 'images.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

image_exists() { podman image exists "$1"; }

# rootfs_import DIR IMAGE [--change ...]: the directory tree as an image.
rootfs_import() {
  local dir=$1 image=$2
  shift 2
  tar -C "$dir" -c . | podman import "$@" - "$image" >/dev/null
}

# chroot_run DIR CMD...: a command in the chroot with /proc, /dev and /dev/pts mounted and services kept down.
chroot_run() {
  local dir=$1
  shift
  printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir/proc"
  mount --bind /dev "$dir/dev"
  mount --bind /dev/pts "$dir/dev/pts"
  local rc=0
  DEBIAN_FRONTEND=noninteractive chroot "$dir" "$@" || rc=$?
  umount "$dir/dev/pts" "$dir/dev" "$dir/proc"
  rm -f "$dir/usr/sbin/policy-rc.d"
  return "$rc"
}

new_rootfs() {
  mkdir -p "$CACHE"
  mktemp -d "$CACHE/rootfs.XXXXXX"
}

# The EE base: pip installs work from PyPI through this machine's CA (copied in), Debian's "externally managed"
# marker is gone (a container image owns its Python), and ansible-builder's dnf-style $PKGMGR calls reach apt-get.
build_base() {
  local image=$1 dir
  dir=$(new_rootfs)
  log "debootstrap: the EE base (Debian 12 minbase, python3, pip)"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates bookworm "$dir" "$MIRROR" \
    >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap of the EE base failed"; }
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$dir/etc/pip.conf"
  rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
  install -m 0755 "$HERE/apt-as-dnf" "$dir/usr/local/sbin/apt-as-dnf"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
  rootfs_import "$dir" "$image" --change 'CMD ["/bin/bash"]'
  rm -rf "$dir" "$dir.log"
}

# A libvirt host without privileges (ENVIRONMENT.md, "Hypervisor hosts as containers").
build_hv() {
  local image=$1 dir
  dir=$(new_rootfs)
  log "debootstrap: the hypervisor host (systemd, sshd, libvirtd, QEMU)"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3 bookworm "$dir" "$MIRROR" \
    >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap of the host image failed"; }
  chroot_run "$dir" apt-get install -y -qq --no-install-recommends openssh-server libvirt-daemon-system \
    libvirt-clients libvirt-daemon-driver-qemu qemu-system-x86 python3-libvirt >>"$dir.log" 2>&1 \
    || { tail -20 "$dir.log" >&2; rm -rf "$dir"; die "apt-get install in the host image failed"; }
  printf 'namespaces = [ ]\ncgroup_controllers = [ ]\nremember_owner = 0\n' >> "$dir/etc/libvirt/qemu.conf"
  rm -f "$dir/etc/libvirt/qemu/networks/autostart/default.xml"
  ln -sf /dev/null "$dir/etc/systemd/system/libvirt-guests.service"
  sed -i '/pam_systemd.so/d' "$dir/etc/pam.d/common-session"
  : > "$dir/etc/machine-id"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
  rootfs_import "$dir" "$image" --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3'
  rm -rf "$dir" "$dir.log"
}

# collection_hash TARBALL: a hash of the built collection's file names and contents (the tarball's own bytes
# carry build times).
collection_hash() {
  "$VENV/bin/python" - "$1" <<'EOF'
import hashlib, sys, tarfile
digest = hashlib.sha256()
with tarfile.open(sys.argv[1]) as tar:
    for member in sorted(tar.getmembers(), key=lambda m: m.name):
        if member.isfile():
            digest.update(member.name.encode() + b'\0' + tar.extractfile(member).read())
print(digest.hexdigest()[:16])
EOF
}

# The EE: ansible-builder on a copy of ee/ with the collection's tarball as ee/dist/pagefusion-core.tar.gz, over
# the local base image (--build-arg EE_BASE_IMAGE) with apt behind $PKGMGR.
build_ee() {
  local image=$1 base=$2 tarball=$3 context
  context=$(mktemp -d /var/tmp/pagefusion-ee.XXXXXX)
  cp -r "$ROOT/ee/." "$context/"
  mkdir -p "$context/dist"
  cp "$tarball" "$context/dist/pagefusion-core.tar.gz"
  log "ansible-builder build: $image (over $base)"
  local rc=0
  (cd "$context" && "$VENV/bin/ansible-builder" build --container-runtime podman -f execution-environment.yml \
    -t "$image" --context "$context/context" --build-arg EE_BASE_IMAGE="$base" \
    --build-arg PKGMGR=/usr/local/sbin/apt-as-dnf --extra-build-cli-args=--network=host -v 2 \
    >"$context.log" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -40 "$context.log" >&2
    rm -rf "$context"
    die "ansible-builder build failed (full log: $context.log)"
  fi
  rm -rf "$context" "$context.log"
}

# prune_superseded IMAGE: remove the other tags of IMAGE's repository (earlier contents), keeping one image each.
prune_superseded() {
  local image=$1 other
  for other in $(podman images --format '{{.Repository}}:{{.Tag}}' "${image%:*}"); do
    [ "$other" = "$image" ] || podman rmi "$other" >/dev/null 2>&1 || true
  done
}

build_tarball() {
  local out=$1
  "$VENV/bin/ansible-galaxy" collection build "$ROOT" --output-path "$out" --force >/dev/null
  ls "$out"/pagefusion-core-*.tar.gz
}

# The builds run in `if` bodies, never after `||`: bash ignores set -e in a function called before `||`.
main() {
  [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot, podman import)"
  local kind=${1:-} image base tarball dist
  case "$kind" in
    base)
      image="localhost/pagefusion-ee-base:$( (declare -f build_base rootfs_import; echo "$MIRROR"; cat "$HERE/apt-as-dnf" \
        /etc/ssl/certs/ca-certificates.crt) | sha256sum | cut -c1-16)"
      if ! image_exists "$image"; then build_base "$image"; fi ;;
    hv)
      image="localhost/pagefusion-ee-hv:$( (declare -f build_hv chroot_run rootfs_import; echo "$MIRROR") \
        | sha256sum | cut -c1-16)"
      if ! image_exists "$image"; then build_hv "$image"; fi ;;
    ee)
      base=$("$0" base)
      dist=$(mktemp -d /var/tmp/pagefusion-ee-dist.XXXXXX)
      tarball=$(build_tarball "$dist")
      image="localhost/pagefusion-ee:$( (echo "$base"; collection_hash "$tarball"; find "$ROOT/ee" -type f -print0 \
        | sort -z | xargs -0 cat; declare -f build_ee) | sha256sum | cut -c1-16)"
      if ! image_exists "$image"; then build_ee "$image" "$base" "$tarball"; fi
      rm -rf "$dist" ;;
    *) die "usage: images.sh base|hv|ee" ;;
  esac
  prune_superseded "$image"
  echo "$image"
}

main "$@"
