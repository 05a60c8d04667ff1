# shellcheck shell=bash
# Sourced by runme.sh (uses its WORK, HERE, step and recap): the summary at the end of enable.yml and disable.yml,
# in check mode and for real, over summary_inventory.yml, whose hosts have one outcome each: changed, unchanged,
# skipped as ineligible, failed (the named backend is missing) and not reached (unreachable).
# summary_run STATE MODE [ARGS...]: runs enable or disable (exit status 2: two hosts fail), then checks the table
# in the output and the JSON in summary_file against each other and against the expected outcomes.
summary_run() {
  local state=$1 mode=$2 rc=0
  shift 2
  local playbook=pagefusion.core.enable
  [ "$state" = disabled ] && playbook=pagefusion.core.disable
  local args=(-i "$WORK/summary/summary_inventory.yml" "$playbook" -e summary_file="$WORK/summary.json")
  [ "$mode" = check ] && args+=(--check)
  rm -f "$WORK/summary.json"
  ansible-playbook "${args[@]}" "$@" > "$WORK/last.log" 2>&1 || rc=$?
  if [ "$rc" -ne 2 ]; then
    cat "$WORK/last.log"
    echo "fleet: ansible-playbook ${args[*]} exited $rc, expected 2 (two hosts fail)" >&2
    exit 1
  fi
  python3 "$HERE/check_summary.py" "$WORK/summary.json" "$WORK/last.log" "$state" "$mode" || {
    cat "$WORK/last.log"
    exit 1
  }
  recap sum-vbox-missing 'failed=1'
  recap sum-unreachable 'failed=1'
  for h in sum-off sum-on sum-ineligible; do recap "$h" 'failed=0'; done
}

# The test-driver URIs take the node files' path, which must be plain: ansible-test's own directory has unicode in it.
mkdir -p "$WORK/summary"
cp "$HERE/summary_inventory.yml" "$HERE/summary-node-off.xml" "$HERE/summary-node-on.xml" "$WORK/summary/"

step "summary: enable --check, enable, enable --check again (changed, unchanged, ineligible, backend missing, unreachable)"
summary_run enabled check
summary_run enabled real -e page_fusion_serial=2
summary_run enabled check

step "summary: disable --check, disable"
summary_run disabled check
summary_run disabled real -e page_fusion_serial=1
