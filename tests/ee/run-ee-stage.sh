#!/usr/bin/env bash
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# run-ee-stage.sh: the `ee` stage of ./dev test, as root on Debian 12 after ./dev setup.
#   1. the collection's EE metadata: the built tarball installed, `ansible-builder introspect` on it (pytest);
#   2. the images (cached by content hash, tests/ee/images.sh): the EE base, the EE itself (ansible-builder build
#      of ee/execution-environment.yml), the hypervisor host; then libvirt-python and pagefusion.core inside the EE;
#   3. the fleet (tests/ee/fleet_run.py): the collection's playbooks through ansible-runner inside the EE, over SSH
#      to podman containers with systemd, libvirtd and TCG guests; its host_daemon step under the KSM lock (the
#      daemon drives the machine's KSM; the knobs are saved before and put back after).
# Fails, never skips, when podman, a build or a check fails. The fleet's containers are removed also on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY="$ROOT/.venv/bin/python"
APT_PACKAGES=(podman runc uidmap debootstrap openssh-client)
export CONTAINERS_CONF="$HERE/containers.conf"

log() { printf '\n\033[1m== ee: %s\033[0m\n' "$*"; }
die() { printf 'run-ee-stage.sh: error: %s\n' "$*" >&2; exit 1; }

install_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

remove_fleet() {
  podman rm --force --time 5 --ignore pfee-hv1 pfee-hv2 pfee-vbox >/dev/null 2>&1 || true
}

# timed LABEL CMD...: the command, then how long it took.
timed() {
  local label=$1 started=$SECONDS
  shift
  # Explicit: under `x=$(timed ...) || die`, bash ignores set -e inside the function.
  "$@" || return $?
  printf 'ee: %s took %ss\n' "$label" $((SECONDS - started)) >&2
}

check_ee_contents() {
  local image=$1
  podman run --rm "$image" python3 -c 'import libvirt; print("libvirt-python", libvirt.getVersion())' \
    || die "libvirt-python does not import in $image"
  podman run --rm "$image" ansible-galaxy collection list pagefusion.core | grep -q '^pagefusion\.core ' \
    || die "pagefusion.core is not installed in $image"
  podman run --rm "$image" ansible-runner --version >/dev/null || die "ansible-runner is missing in $image"
  podman image inspect --format 'ee: {{.Id}} {{.Size}} bytes' "$image"
}

main() {
  [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, podman with systemd, KSM)"
  [ -x "$PY" ] || die "$PY is missing: run ./dev setup first"
  [ -x "$ROOT/.venv/bin/ansible-builder" ] || die "ansible-builder is not in .venv (tests/requirements.txt; ./dev setup)"
  install_apt_packages
  podman info >/dev/null || die "podman does not work here (CONTAINERS_CONF=$CONTAINERS_CONF)"
  "$ROOT/tests/setup/build-guest.sh" >/dev/null

  log "EE metadata: ansible-builder introspect on the installed collection"
  timed metadata "$PY" -m pytest -q -p no:cacheprovider "$HERE/test_ee_metadata.py"

  log "images (cached by content hash)"
  local ee_image host_image
  ee_image=$(timed "EE image" "$HERE/images.sh" ee) || die "the EE image build failed"
  host_image=$(timed "host image" "$HERE/images.sh" hv) || die "the host image build failed"
  echo "ee: EE $ee_image, hosts $host_image"
  check_ee_contents "$ee_image"

  log "fleet over SSH from the EE (ansible-runner); the host_daemon step under the KSM lock"
  trap remove_fleet EXIT
  (cd "$HERE" && timed fleet "$PY" fleet_run.py "$ee_image" "$host_image")
}

main "$@"
