#!/usr/bin/env bash
# run-molecule.sh SCENARIO [MOLECULE ARGS...]: run one of the collection's molecule scenarios (molecule/SCENARIO)
# against this work tree, from the collection root, as root (Debian 12).
#
#   tests/setup/run-molecule.sh host_daemon              # molecule test -s host_daemon (the full sequence)
#   tests/setup/run-molecule.sh guest_agent converge     # any molecule command, e.g. converge, verify, destroy
#   tests/setup/run-molecule.sh guest_agent test --destroy never
#
# What it sets up first:
# - apt: podman, runc, debootstrap, uidmap, and what libvirt-python builds with;
# - .build/molecule-venv: tests/molecule-requirements.txt (molecule, ansible-core, libvirt-python and the `ansible`
#   package for containers.podman's podman connection; Galaxy is not reachable), reinstalled when it changes;
# - the collection as the roles' full names see it: a symlink to this work tree in .build/molecule-collections
#   (the scenarios switch molecule's prerun off, so no built copy lands in ~/.ansible/collections);
# - scenarios that use the real libvirt daemon (their molecule.yml names qemu:///system): start-libvirt.sh;
# - scenarios with a containers.conf: CONTAINERS_CONF pointing at it;
# - scenarios that see the host's KSM (their files name /sys/kernel/mm/ksm): the KSM lock for the whole run (at
#   once when an ancestor holds it), the host's KSM knobs saved first and put back afterwards (run=2 to unmerge,
#   run=0, the saved values), through the dev-only package pagefusion_dev with .venv's Python (./dev setup).
#
# Environment: PYTHON (the Python that makes the venv, default python3), PF_GA_SSH_PORT (guest_agent: the forwarded
# SSH port, default 22422).
set -euo pipefail

HERE="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
ROOT="$(cd "${HERE}/../.." && pwd)"
VENV="${ROOT}/.build/molecule-venv"
STAMP="${ROOT}/.build/stamps/molecule-venv"
COLLECTIONS="${ROOT}/.build/molecule-collections"
REQUIREMENTS=("${ROOT}/tests/molecule-requirements.txt" "${ROOT}/requirements.txt")
DEV_PYTHON="${ROOT}/.venv/bin/python"
APT_PACKAGES=(podman runc debootstrap uidmap python3-venv python3-dev gcc pkg-config libvirt-dev)
PY=${PYTHON:-python3}

log() { printf 'run-molecule.sh: %s\n' "$*" >&2; }

die() {
    log "error: $*"
    exit 2
}

install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${pkg}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    log "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_molecule_venv() {
    local reqs_hash
    reqs_hash=$(cat "${REQUIREMENTS[@]}" | sha256sum | cut -c1-16)
    [[ -x ${VENV}/bin/molecule && "$(cat "${STAMP}" 2>/dev/null)" == "${reqs_hash}" ]] && return
    log "installing molecule and ansible into ${VENV}"
    [[ -x ${VENV}/bin/python ]] || "${PY}" -m venv "${VENV}"
    "${VENV}/bin/pip" install -q --disable-pip-version-check -r "${ROOT}/tests/molecule-requirements.txt"
    mkdir -p "$(dirname "${STAMP}")"
    echo "${reqs_hash}" >"${STAMP}"
}

link_collection() {
    install -d "${COLLECTIONS}/ansible_collections/pagefusion"
    ln -sfn "${ROOT}" "${COLLECTIONS}/ansible_collections/pagefusion/core"
}

known_scenarios() {
    local file names=()
    for file in "${ROOT}"/molecule/*/molecule.yml; do
        names+=("$(basename "$(dirname "${file}")")")
    done
    echo "${names[*]}"
}

# mentions PATH TEXT: PATH (a file, or any file under a directory) contains TEXT.
mentions() { grep -rqs -- "$2" "$1"; }

# molecule_env SCENARIO_DIR: the environment molecule runs in, exported.
molecule_env() {
    export PATH="${VENV}/bin:${PATH}"
    export ANSIBLE_COLLECTIONS_PATH="${COLLECTIONS}"
    # The scenarios live in molecule/ at the collection root (the design card's layout), not in
    # extensions/molecule/ where molecule's collection mode would look for them.
    export MOLECULE_GLOB='molecule/*/molecule.yml'
    if [[ -f $1/containers.conf ]]; then
        export CONTAINERS_CONF="$1/containers.conf"
    fi
}

# run_with_ksm_saved MOLECULE ARGS...: the command under the KSM lock, between a save of the host's KSM knobs and
# their restore, also when it fails or is interrupted; its exit status.
run_with_ksm_saved() {
    [[ -x ${DEV_PYTHON} ]] || die "${DEV_PYTHON} is missing (./dev setup makes .venv with pagefusion_dev)"
    log "the scenario sees the host's KSM: taking the KSM lock (waits while another KSM test holds it)"
    "${DEV_PYTHON}" -m pagefusion_dev.ksm_reset run -- "$@"
}

main() {
    local scenario=${1:-}
    [[ -n ${scenario} ]] || die "usage: run-molecule.sh SCENARIO [MOLECULE ARGS...] (scenarios: $(known_scenarios))"
    shift
    local scenario_dir="${ROOT}/molecule/${scenario}"
    [[ -f ${scenario_dir}/molecule.yml ]] || die "no molecule scenario molecule/${scenario}"
    [[ "$(id -u)" -eq 0 ]] || die "run this as root (apt-get, podman with systemd, libvirt, KSM)"
    local command=${1:-test}
    shift || true

    install_apt_packages
    install_molecule_venv
    link_collection
    if mentions "${scenario_dir}/molecule.yml" 'qemu:///system'; then
        "${HERE}/start-libvirt.sh"
    fi
    molecule_env "${scenario_dir}"
    cd "${ROOT}"
    if mentions "${scenario_dir}" '/sys/kernel/mm/ksm'; then
        run_with_ksm_saved molecule "${command}" -s "${scenario}" "$@"
    else
        exec molecule "${command}" -s "${scenario}" "$@"
    fi
}

main "$@"
