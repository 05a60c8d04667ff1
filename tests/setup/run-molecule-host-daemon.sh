#!/usr/bin/env bash
# Runs the molecule scenario of pagefusion.core.host_daemon under a real systemd in podman (root, Debian 12).
#   tests/setup/run-molecule-host-daemon.sh [MOLECULE COMMAND...]      default: test
# Installs what it needs: Debian's podman, runc, debootstrap; molecule + the `ansible` package (for
# containers.podman's podman connection; Galaxy is not reachable) into .build/molecule-venv.
# The scenario sees the host's KSM: this script holds /tmp/pagefusion-ksm.lock for the whole run,
# saves the KSM knobs first and puts them back afterwards (run=2 to unmerge, run=0, the saved values).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
VENV="$ROOT/.build/molecule-venv"
COLLECTIONS="$ROOT/.build/molecule-collections"
STAMP="$ROOT/.build/stamps/molecule-venv"
SCENARIO="$ROOT/roles/host_daemon/molecule/default"
LOCK=/tmp/pagefusion-ksm.lock
APT_PACKAGES=(podman runc debootstrap uidmap)
PY=${PYTHON:-python3}

if [ "$(id -u)" -ne 0 ]; then
  echo "run-molecule-host-daemon: run this as root (podman with systemd, debootstrap, KSM)" >&2
  exit 2
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run-molecule-host-daemon: apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

reqs_hash=$(sha256sum < "$ROOT/tests/molecule-requirements.txt" | cut -c1-16)
if [ ! -x "$VENV/bin/molecule" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$reqs_hash" ]; then
  echo "run-molecule-host-daemon: installing molecule and ansible into $VENV"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/molecule-requirements.txt"
  mkdir -p "$(dirname "$STAMP")"
  echo "$reqs_hash" > "$STAMP"
fi

# The collection as the role's full name sees it: a symlink to this checkout (no build needed).
mkdir -p "$COLLECTIONS/ansible_collections/pagefusion"
ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/pagefusion/core"

ksm_snapshot() {
  "$PY" - "$ROOT" <<'PYEOF'
import json, sys
sys.path.insert(0, sys.argv[1] + '/plugins/module_utils')
import _ksm
print(json.dumps(_ksm.KsmSysfs().snapshot_knobs()))
PYEOF
}

ksm_restore() {
  "$PY" - "$ROOT" "$1" <<'PYEOF'
import json, sys, time
sys.path.insert(0, sys.argv[1] + '/plugins/module_utils')
import _ksm
ksm = _ksm.KsmSysfs()
saved = json.loads(sys.argv[2])
ksm.write('run', 2)
deadline = time.monotonic() + 120
while ksm.read('pages_shared') and time.monotonic() < deadline:
    time.sleep(0.1)
ksm.write('run', 0)
if saved.get('run') == 2:
    saved['run'] = 0
ksm.restore_knobs(saved)
print('run-molecule-host-daemon: KSM restored: %s' % ', '.join('%s=%s' % kv for kv in sorted(ksm.snapshot_knobs().items())))
PYEOF
}

[ $# -gt 0 ] || set -- test
exec 9>>"$LOCK"
# Blocking unless a parent (e.g. `flock /tmp/pagefusion-ksm.lock ./dev ...`) holds the lock already.
if ! flock -n 9 && ! "$PY" "$ROOT/tests/setup/ksm_lock.py" --ancestor-holds "$LOCK"; then
  flock 9
fi
saved=$(ksm_snapshot)
rc=0
(cd "$ROOT/roles/host_daemon" && \
  PATH="$VENV/bin:$PATH" \
  ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS" \
  CONTAINERS_CONF="$SCENARIO/containers.conf" \
  molecule "$@") || rc=$?
ksm_restore "$saved"
exit $rc
