#!/usr/bin/env bash
# Fleet orchestration end to end: playbooks/enable.yml, report.yml and disable.yml across a simulated fleet
# (inventory.yml): three "hosts" on the real libvirt daemon with their own pffleet-<x>-* domains (fleet-c has two
# running TCG guests that are restarted in one parallel batch), one on libvirt's test driver, one broken on purpose.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The report check needs a headless browser; ./dev setup installs it. Fail at once, not after minutes of work.
if ! command -v chromium >/dev/null 2>&1; then
  echo "fleet: chromium is not on the PATH: it checks report.html in a headless browser (apt-get install chromium;" \
    "./dev setup installs it)" >&2
  exit 1
fi
# ansible-test runs a copy of this directory; ./dev puts the collection's tests/setup on the PATH.
if [ -x "$HERE/../../../setup/pf-testguest" ]; then
  SETUP=$(cd "$HERE/../../../setup" && pwd)
else
  SETUP=$(dirname "$(command -v pf-testguest)")
fi
ROOT=$(cd "$SETUP/../.." && pwd)                  # the collection root
T="$SETUP/pf-testguest"
WORK=$(mktemp -d /tmp/pffleet-test.XXXXXX)
export PF_LIBVIRT_URI=qemu:///system
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_FORCE_COLOR=0
INV=(-i "$HERE/inventory.yml")

cleanup() {
  "$T" cleanup --prefix pffleet- >/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n=== fleet: %s (%ss)\n' "$*" "$SECONDS"; }

# Runs ansible-playbook, keeps its output in $WORK/last.log and checks its exit status (2: some host failed).
play() {
  local want=$1
  shift
  local rc=0
  ansible-playbook "${INV[@]}" "$@" > "$WORK/last.log" 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ]; then
    cat "$WORK/last.log"
    echo "fleet: ansible-playbook $* exited $rc, expected $want" >&2
    exit 1
  fi
  sed -n '/^PLAY RECAP/,$p' "$WORK/last.log"
}

# recap HOST REGEX: the host's PLAY RECAP line of the last run matches.
recap() {
  grep -E "^$1 +:" "$WORK/last.log" | grep -Eq "$2" || {
    cat "$WORK/last.log"
    echo "fleet: PLAY RECAP of $1 does not match $2" >&2
    exit 1
  }
}

step "set-up: libvirt, the test guest, the domains"
"$SETUP/start-libvirt.sh" >/dev/null
"$SETUP/build-guest.sh" >/dev/null
"$T" cleanup --prefix pffleet- >/dev/null
cp "$ROOT/playbooks/files/demo-node.xml" "$WORK/demo-node.xml"
export PFFLEET_DEMO_NODE="$WORK/demo-node.xml"
# Defined only (no CPU cost); page fusion off, so that enable has work to do.
for vm in pffleet-a-1 pffleet-a-2 pffleet-a-3 pffleet-b-1 pffleet-b-2 pffleet-c-3; do
  "$T" define "$vm" --memory-mib 96 --fill-mib 8 --nosharepages >/dev/null
done
for vm in pffleet-c-1 pffleet-c-2; do
  "$T" define "$vm" --memory-mib 96 --fill-mib 8 --nosharepages --start >/dev/null
done
ansible-playbook "${INV[@]}" "$HERE/verify.yml" -e expect=disabled >/dev/null

step "the role in check mode predicts enable and changes nothing"
play 0 "$HERE/check_mode.yml" --check -e state=enabled
ansible-playbook "${INV[@]}" "$HERE/verify.yml" -e expect=disabled >/dev/null

step "enable.yml: every host but fleet-broken is done; fleet-broken fails alone"
play 2 pagefusion.core.enable -e page_fusion_serial=2
recap fleet-broken 'failed=1'
for h in fleet-a fleet-b fleet-c fleet-d; do recap "$h" 'changed=[1-9].* failed=0'; done
grep -q 'VM(s) have page fusion enabled' "$WORK/last.log"
ansible-playbook "${INV[@]}" "$HERE/verify.yml" -e expect=enabled >/dev/null

step "enable.yml again: nothing changes (fleet-d is the non-persistent test driver)"
play 2 pagefusion.core.enable -e page_fusion_serial=2
for h in fleet-a fleet-b fleet-c; do recap "$h" 'changed=0 .*failed=0'; done
recap fleet-broken 'failed=1'

step "report.yml, checked against fusion_facts read before and after it"
ansible-playbook "${INV[@]}" "$HERE/snapshot.yml" -e out="$WORK/before.json" >/dev/null
play 0 pagefusion.core.report -e report_dir="$WORK/report"
ansible-playbook "${INV[@]}" "$HERE/snapshot.yml" -e out="$WORK/after.json" >/dev/null
python3 "$HERE/check_report.py" "$WORK/report" "$WORK/before.json" "$WORK/after.json"
"$SETUP/check-report-in-chromium.sh" "$WORK/report/report.html" "$WORK/report.png" 4

step "the rollout stops once too many hosts failed (max_fail_percentage=0, one host per batch)"
play 2 pagefusion.core.disable -e page_fusion_serial=1 -e page_fusion_max_fail_percentage=0
for h in fleet-a fleet-b fleet-c fleet-d; do recap "$h" 'changed=0 .*failed=1'; done
grep -q 'rollout stopped before fleet-a' "$WORK/last.log"
ansible-playbook "${INV[@]}" "$HERE/verify.yml" -e expect=enabled >/dev/null

step "disable.yml, twice"
play 2 pagefusion.core.disable -e page_fusion_serial=2
for h in fleet-a fleet-b fleet-c; do recap "$h" 'changed=[1-9].* failed=0'; done
ansible-playbook "${INV[@]}" "$HERE/verify.yml" -e expect=disabled >/dev/null
play 2 pagefusion.core.disable -e page_fusion_serial=2
for h in fleet-a fleet-b fleet-c; do recap "$h" 'changed=0 .*failed=0'; done

# The summary table and JSON at the end of enable.yml and disable.yml (a fleet of its own, summary_inventory.yml).
source "$HERE/summary.sh"

step "done"
