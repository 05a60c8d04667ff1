#!/usr/bin/env bash
# run-molecule.sh ROLE [MOLECULE ARGS...]: run a role's molecule scenario against this work tree.
#
#   tests/setup/run-molecule.sh guest_agent              # molecule test (the full sequence)
#   tests/setup/run-molecule.sh guest_agent converge     # any molecule command, e.g. converge, verify, destroy
#
# The collection is this work tree itself, reached through a symlink in .build/molecule-collections, so the
# scenario always runs the current code (no build or install step). Scenarios that use the real libvirt daemon
# (their molecule.yml names qemu:///system) get it started first (start-libvirt.sh). Needs root for those.
#
# Environment: PF_VENV (default ./.venv), PF_GA_SSH_PORT (guest_agent: the forwarded SSH port, default 22422).
set -euo pipefail

die() {
    printf 'run-molecule.sh: error: %s\n' "$*" >&2
    exit 2
}

HERE="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
ROOT="$(cd "${HERE}/../.." && pwd)"
VENV="${PF_VENV:-${ROOT}/.venv}"
ROLE="${1:-}"
[[ -n ${ROLE} ]] || die "usage: run-molecule.sh ROLE [MOLECULE ARGS...]"
shift
SCENARIO_DIR="${ROOT}/roles/${ROLE}/molecule"
[[ -d ${SCENARIO_DIR} ]] || die "roles/${ROLE} has no molecule scenario"
[[ -x ${VENV}/bin/molecule ]] || die "molecule is not installed in ${VENV} (./dev setup installs tests/requirements.txt)"

COLLECTIONS="${ROOT}/.build/molecule-collections"
install -d "${COLLECTIONS}/ansible_collections/pagefusion"
ln -sfn "${ROOT}" "${COLLECTIONS}/ansible_collections/pagefusion/core"

if grep -rqs 'qemu:///system' "${SCENARIO_DIR}"/*/molecule.yml; then
    "${HERE}/start-libvirt.sh"
fi

cd "${ROOT}/roles/${ROLE}"
export ANSIBLE_COLLECTIONS_PATH="${COLLECTIONS}"
export PATH="${VENV}/bin:${PATH}"
if [[ $# -eq 0 ]]; then
    set -- test
fi
exec molecule "$@"
