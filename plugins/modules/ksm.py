#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: ksm
short_description: Set Linux KSM (Kernel Samepage Merging) knobs idempotently
version_added: 0.1.0
description:
  - Sets the knobs of Linux KSM under C(/sys/kernel/mm/ksm), the kernel feature that merges identical
    memory pages, for example the pages of many KVM/libvirt guests running the same operating system.
  - Works like M(ansible.posix.sysctl) but for KSM, for hosts that do not run the C(pagefusiond)
    host daemon (role P(pagefusion.core.host_daemon#role)). The daemon tunes these knobs itself; do
    not use both on one host.
  - Reads the current values, plans the change, and only then, outside check mode, writes the knobs
    that differ, in a safe order. Check mode and the real run use the same comparison.
  - Every option is optional; an option that is not set leaves its knob alone. With no knob set the
    module only reports.
  - Knobs the running kernel does not have (they are detected, not guessed from the kernel version)
    make the module fail with the kernel feature they need.
  - KSM is global to the host. Sharing memory between virtual machines of different, mutually
    untrusted tenants opens side channels; enable KSM (O(run=1)) only where that is acceptable.
author:
  - pagefusion.core maintainers (@pagefusion)
attributes:
  check_mode:
    support: full
    description: Can run in check mode and predicts exactly what a real run would change, without writing anything.
  diff_mode:
    support: full
    description: Returns the knobs before and after (and the O(persist_path) file before and after) when in diff mode.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
  platform:
    support: full
    platforms: posix
    description: Linux hosts with a kernel built with C(CONFIG_KSM).
options:
  run:
    description:
      - V(0) stops C(ksmd) and keeps the pages merged so far.
      - V(1) runs C(ksmd).
      - V(2) stops C(ksmd) and unmerges every merged page. This can need a lot of memory at once, so it is
        refused, with the figures, unless the memory taken back fits (O(unmerge_margin_mib), O(unmerge_when_short)).
    type: int
    choices: [0, 1, 2]
  pages_to_scan:
    description:
      - How many pages C(ksmd) scans before it sleeps. Kernel default V(100).
      - The kernel refuses writes while O(advisor_mode=scan-time), because the advisor sets it
        itself; setting a different value together with O(advisor_mode=scan-time) is an error.
        Switching O(advisor_mode) resets it (to V(100), or to O(advisor_min_pages_to_scan)); the
        module takes that into account.
      - Range V(0) to V(4294967295). V(0) makes C(ksmd) scan nothing.
    type: int
  sleep_millisecs:
    description:
      - How many milliseconds C(ksmd) sleeps between batches. Kernel default V(20). Range V(0) to V(4294967295).
    type: int
  merge_across_nodes:
    description:
      - Whether pages from different NUMA nodes may be merged. Kernel default V(true).
      - Only on NUMA-enabled kernels. It can only change while no KSM pages exist; see O(allow_unmerge).
    type: bool
  use_zero_pages:
    description:
      - Whether empty pages are merged with the kernel zero page. Kernel default V(false).
    type: bool
  max_page_sharing:
    description:
      - The most sharers one KSM page may have. Kernel default V(256). Range V(2) to V(2147483647).
      - It can only change while no KSM pages exist; see O(allow_unmerge).
    type: int
  stable_node_chains_prune_millisecs:
    description:
      - How often, in milliseconds, stale stable node chain metadata is pruned. Kernel default V(2000).
        Range V(0) to V(4294967295).
    type: int
  smart_scan:
    description:
      - Whether C(ksmd) skips pages that repeatedly failed to merge. Kernel default V(true).
    type: bool
  advisor_mode:
    description:
      - V(none) leaves O(pages_to_scan) to you; V(scan-time) lets the kernel's advisor tune it so
        that one full scan takes about O(advisor_target_scan_time) seconds. Kernel default V(none).
    type: str
    choices: [none, scan-time]
  advisor_max_cpu:
    description:
      - The most CPU, in percent of one CPU, the advisor lets C(ksmd) use. Kernel default V(70). Range V(1) to V(100).
    type: int
  advisor_target_scan_time:
    description:
      - The seconds the advisor aims for one full scan. Kernel default V(200). At least V(1).
    type: int
  advisor_min_pages_to_scan:
    description:
      - The O(pages_to_scan) the advisor starts from. Kernel default V(500). At least V(1) and at
        most O(advisor_max_pages_to_scan) when both are set.
    type: int
  advisor_max_pages_to_scan:
    description:
      - The highest O(pages_to_scan) the advisor may choose. Kernel default V(30000). At least V(1).
    type: int
  thp_max_ptes_none:
    description:
      - Sets C(/sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none), the most empty or zero-page
        entries a 2 MiB range may have for C(khugepaged) to collapse it into a new huge page. Kernel default V(511).
      - C(khugepaged) counts a KSM zero page (O(use_zero_pages=true)) as empty, so with the default it turns
        ranges that hold KSM zero pages and some data back into huge pages, and the zero-page saving comes
        back as used memory. V(0) keeps KSM zero pages; see C(docs/thp-and-ksm-zero-pages.md) for the measurement.
      - V(0) also means fewer huge pages for all processes on the host (ranges with any unwritten page are no
        longer collapsed) and lets the kernel's THP shrinker split huge pages that contain zero-filled pages.
      - Range V(0) to the pages of one huge page minus one (V(511) with 4 KiB pages). The module fails when
        the kernel has no transparent huge pages.
      - Not set (the default) leaves it alone. Global to the host, like the KSM knobs.
    type: int
    version_added: 0.1.0
  allow_unmerge:
    description:
      - O(merge_across_nodes) and O(max_page_sharing) can only change while no KSM pages exist.
      - When V(true) and pages are merged, the module unmerges all pages (writes O(run=2)), waits
        until none are left, writes the knob and then sets O(run) back to what it was (or to the
        value asked for). The result then has RV(unmerged=true).
      - When V(false) the module fails instead and changes nothing.
      - Unmerging can need a lot of memory at once and loses all savings until C(ksmd) merges again; it is
        refused, with the figures, unless the memory taken back fits (O(unmerge_margin_mib), O(unmerge_when_short)).
    type: bool
    default: false
  unmerge_margin_mib:
    description:
      - Unmerging gives every merged page its own copy again, so it takes memory back. Before O(run=2) or
        an unmerge for O(allow_unmerge), the module compares the memory it would take back
        (C(pages_sharing) plus C(ksm_zero_pages), times the page size) with C(MemAvailable) from
        C(/proc/meminfo) minus this margin, in MiB, and fails with both figures, changing nothing, when it
        does not fit. Check mode reports the same refusal.
      - Nothing to take back (no pages merged) always fits.
    type: int
    default: 1024
    version_added: 0.1.0
  unmerge_when_short:
    description:
      - Unmerge even when the memory taken back does not fit in C(MemAvailable) minus O(unmerge_margin_mib).
        The module warns with the figures instead of failing. The kernel makes the writer of O(run=2) the
        first choice of the OOM killer while it unmerges, but other processes can still be pushed out.
    type: bool
    default: false
    version_added: 0.1.0
  unmerge_timeout:
    description:
      - Seconds to wait, after writing O(run=2) for O(allow_unmerge), until no KSM pages are left
        (C(pages_shared=0)); the module fails when some are left then. At least V(1).
      - The kernel unmerges within the write itself, so this is a safety bound.
    type: int
    default: 60
    version_added: 0.1.0
  persist:
    description:
      - When V(true), also writes a C(systemd-tmpfiles) configuration (O(persist_path)) with one
        C(w) line per knob set in this task, so the values are applied again at boot.
      - The file always holds exactly the knobs of this task; knobs set by other tasks are not merged in.
      - When V(false) (the default), an existing O(persist_path) file is left alone (neither
        updated nor removed). Remove it with M(ansible.builtin.file) if you no longer want it.
    type: bool
    default: false
  persist_path:
    description:
      - The C(systemd-tmpfiles) configuration file written when O(persist=true).
    type: path
    default: /etc/tmpfiles.d/pagefusion-ksm.conf
notes:
  - Needs root.
  - The pages that KSM saves are reported by M(pagefusion.core.fusion_facts).
seealso:
  - module: ansible.posix.sysctl
  - module: pagefusion.core.fusion_facts
  - name: Kernel Samepage Merging (kernel documentation)
    description: The admin guide of the KSM sysfs interface.
    link: https://docs.kernel.org/admin-guide/mm/ksm.html
'''

EXAMPLES = r'''
- name: Run KSM with a moderate scan rate
  pagefusion.core.ksm:
    run: 1
    pages_to_scan: 1000
    sleep_millisecs: 50

- name: Let the kernel advisor tune the scan rate, and keep that over reboots
  pagefusion.core.ksm:
    run: 1
    advisor_mode: scan-time
    advisor_target_scan_time: 60
    advisor_max_cpu: 20
    persist: true

- name: Merge only within NUMA nodes (unmerges everything first if pages are merged)
  pagefusion.core.ksm:
    merge_across_nodes: false
    allow_unmerge: true

- name: Stop KSM and give back every merged page, if that leaves 4 GiB of MemAvailable
  pagefusion.core.ksm:
    run: 2
    unmerge_margin_mib: 4096

- name: Merge empty pages into the zero page and keep khugepaged from undoing it
  pagefusion.core.ksm:
    run: 1
    use_zero_pages: true
    thp_max_ptes_none: 0

- name: Only read the current values
  pagefusion.core.ksm:
  register: ksm

- name: Show them
  ansible.builtin.debug:
    var: ksm.knobs
'''

RETURN = r'''
before:
  description:
    - The knobs set in this task, as they were before. O(pages_to_scan) is included when
      O(advisor_mode) changes, because the kernel resets it then. O(thp_max_ptes_none) is included
      (as C(thp_max_ptes_none)) when set.
    - Values are what the kernel reports (V(0)/V(1) for the boolean knobs).
  returned: always
  type: dict
  sample: {"run": 0, "pages_to_scan": 100}
after:
  description:
    - The same knobs after the run (in check mode, as they would be).
  returned: always
  type: dict
  sample: {"run": 1, "pages_to_scan": 1000}
knobs:
  description: Every KSM knob the kernel has, after the run (in check mode, as it would be).
  returned: always
  type: dict
  sample: {"run": 1, "pages_to_scan": 1000, "sleep_millisecs": 20, "advisor_mode": "none"}
unmerged:
  description:
    - Whether all KSM pages were unmerged (O(run=2)) to change O(merge_across_nodes) or
      O(max_page_sharing). In check mode, whether that would happen.
  returned: always
  type: bool
  sample: false
unmerge_fit:
  description:
    - The memory the unmerge takes back and what the host has, as compared before anything is written (see
      O(unmerge_margin_mib)), when the task unmerges, would unmerge in check mode, or refuses to. Also returned
      with a refusal.
  returned: when O(run=2) is set while KSM runs or is stopped, or O(allow_unmerge) unmerges
  type: dict
  contains:
    take_back_bytes:
      description: Memory the unmerge takes back, (C(pages_sharing) + C(ksm_zero_pages)) times the page size.
      type: int
    mem_available_bytes:
      description: C(MemAvailable) of C(/proc/meminfo) (null when the kernel does not report it).
      type: int
    margin_bytes:
      description: O(unmerge_margin_mib) in bytes.
      type: int
    room_bytes:
      description: C(MemAvailable) minus the margin.
      type: int
    fits:
      description: Whether the take-back fits in RV(unmerge_fit.room_bytes).
      type: bool
    take_back_mib:
      description: RV(unmerge_fit.take_back_bytes) in MiB.
      type: float
    mem_available_mib:
      description: RV(unmerge_fit.mem_available_bytes) in MiB.
      type: float
    margin_mib:
      description: The margin in MiB.
      type: float
  sample: {"take_back_bytes": 209715200, "mem_available_bytes": 24627941376, "margin_bytes": 1073741824,
           "room_bytes": 23554199552, "fits": true, "take_back_mib": 200.0, "mem_available_mib": 23486.9,
           "margin_mib": 1024.0}
thp:
  description:
    - Transparent huge pages after the run (in check mode, as they would be), when O(thp_max_ptes_none) is set.
  returned: when O(thp_max_ptes_none) is set
  type: dict
  contains:
    enabled:
      description: The THP mode (C(always), C(madvise) or C(never)).
      type: str
    max_ptes_none:
      description: khugepaged's C(max_ptes_none).
      type: int
    zero_pages_at_risk:
      description: Whether khugepaged may turn KSM zero pages back into huge pages (THP not V(never) and C(max_ptes_none) above 0).
      type: bool
  sample: {"enabled": "madvise", "max_ptes_none": 0, "zero_pages_at_risk": false}
persist_path:
  description: The O(persist_path) file written (or that would be written in check mode).
  returned: when O(persist=true)
  type: str
  sample: /etc/tmpfiles.d/pagefusion-ksm.conf
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.pagefusion.core.plugins.module_utils._ksm import (
    DEFAULT_ROOT,
    KNOB_NAMES,
    UNMERGE_KNOBS,
    KsmError,
    KsmSysfs,
    check_plan,
    normalize_wanted,
    plan_changes,
    predict_knobs,
    tmpfiles_lines,
)
from ansible_collections.pagefusion.core.plugins.module_utils._thp import (
    MAX_PTES_NONE,
    ThpError,
    ThpSysfs,
    zero_pages_at_risk,
)
from ansible_collections.pagefusion.core.plugins.module_utils._unmerge_fit import (
    DEFAULT_MARGIN_MIB,
    UnmergeShortError,
    describe,
    host_fit,
    require_fit,
)

TMPFILES_HEADER = (
    '# Managed by Ansible (pagefusion.core.ksm): KSM settings applied at boot by systemd-tmpfiles.\n'
    '# Lines are in the order in which it is safe to write them.\n'
)


def tmpfiles_content(wanted, thp_max_ptes_none=None):
    lines = tmpfiles_lines(wanted, DEFAULT_ROOT)
    if thp_max_ptes_none is not None:
        lines.append('w %s - - - - %d' % (ThpSysfs().khugepaged_path(MAX_PTES_NONE), thp_max_ptes_none))
    return TMPFILES_HEADER + ''.join(line + '\n' for line in lines)


def read_file(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', errors='replace')
    except IOError:
        return None


def write_persist(module, path, content):
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix='.pagefusion-ksm.', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(to_bytes(content))
        os.chmod(tmp, 0o644)
    except Exception:
        os.unlink(tmp)
        raise
    module.atomic_move(tmp, path)


def fail(module, err, **kwargs):
    module.fail_json(msg=to_native(err), knob=getattr(err, 'knob', None), **kwargs)


ARGUMENT_SPEC = dict(
    run=dict(type='int', choices=[0, 1, 2]),
    pages_to_scan=dict(type='int'),
    sleep_millisecs=dict(type='int'),
    merge_across_nodes=dict(type='bool'),
    use_zero_pages=dict(type='bool'),
    max_page_sharing=dict(type='int'),
    stable_node_chains_prune_millisecs=dict(type='int'),
    smart_scan=dict(type='bool'),
    advisor_mode=dict(type='str', choices=['none', 'scan-time']),
    advisor_max_cpu=dict(type='int'),
    advisor_target_scan_time=dict(type='int'),
    advisor_min_pages_to_scan=dict(type='int'),
    advisor_max_pages_to_scan=dict(type='int'),
    thp_max_ptes_none=dict(type='int'),
    allow_unmerge=dict(type='bool', default=False),
    unmerge_margin_mib=dict(type='int', default=DEFAULT_MARGIN_MIB),
    unmerge_when_short=dict(type='bool', default=False),
    unmerge_timeout=dict(type='int', default=60),
    persist=dict(type='bool', default=False),
    persist_path=dict(type='path', default='/etc/tmpfiles.d/pagefusion-ksm.conf'),
)


class KsmManager(object):
    """Plan, then apply: the knobs first (check mode stops after the plan), then the tmpfiles.d file."""

    def __init__(self, module, sysfs=None):
        self.module = module
        self.sysfs = sysfs or KsmSysfs()
        # Next to the KSM directory: the real one on a host, the fake tree in unit tests.
        self.thp = ThpSysfs.beside(self.sysfs.root)
        self.thp_changes = {}
        self.allow_unmerge = module.params['allow_unmerge']
        self.diffs = []
        self.result = {}

    def plan(self):
        """Read the knobs, decide what changes and refuse what the kernel would refuse; nothing is written."""
        try:
            self.wanted = normalize_wanted(dict((k, self.module.params[k]) for k in KNOB_NAMES))
            self.sysfs.require()
            self.current = self.sysfs.read_knobs()
            self.changes = plan_changes(self.current, self.wanted, self.sysfs.root)
            unmerge = check_plan(self.sysfs.read_counters(), self.changes, self.allow_unmerge)
        except KsmError as err:
            fail(self.module, err)
        self.touched = set(self.wanted)
        if 'advisor_mode' in self.changes and 'pages_to_scan' in self.current:
            self.touched.add('pages_to_scan')
        self.result = dict(changed=bool(self.changes), unmerged=unmerge)
        self.plan_thp()
        self.check_unmerge_fit(unmerge)

    def plan_thp(self):
        """khugepaged's max_ptes_none, when the task sets it: validated against this kernel, nothing written."""
        try:
            self.thp_changes = self.thp.plan(self.module.params['thp_max_ptes_none'])
        except ThpError as err:
            self.module.fail_json(msg=to_native(err), changed=False)
        self.result['changed'] = self.result['changed'] or bool(self.thp_changes)

    def check_unmerge_fit(self, unmerge):
        """Refuse an unmerge whose take-back does not fit in MemAvailable minus the margin (check mode alike)."""
        if self.changes.get('run', (None, None))[1] == 2:
            what = 'Refusing to unmerge all KSM pages (run=2)'
        elif unmerge:
            what = ('Refusing to unmerge all KSM pages (allow_unmerge) to change %s'
                    % ' and '.join(k for k in self.changes if k in UNMERGE_KNOBS))
        else:
            return
        params = self.module.params
        fit = host_fit(self.sysfs, params['unmerge_margin_mib'], self.sysfs.proc_root)
        self.result['unmerge_fit'] = fit
        try:
            require_fit(fit, what, 'unmerge_when_short=true', params['unmerge_when_short'])
        except UnmergeShortError as err:
            self.module.fail_json(msg=to_native(err), changed=False, unmerge_fit=fit)
        if not fit['fits']:
            self.module.warn('Unmerging all KSM pages although %s (unmerge_when_short=true).' % describe(fit))

    def _touched(self, knobs):
        return dict((k, knobs[k]) for k in KNOB_NAMES if k in self.touched)

    def apply_knobs(self):
        """Write the planned knobs (outside check mode); before/after of the knobs the task names."""
        if self.changes and not self.module.check_mode:
            try:
                self.result['unmerged'] = self.sysfs.apply(self.changes, self.allow_unmerge,
                                                           self.module.params['unmerge_timeout'])
            except KsmError as err:
                # Some knobs may have been written before the failure: report the knobs as they are now.
                fail(self.module, err, before=self._touched(self.current), knobs=self.sysfs.read_knobs())
            knobs_after = self.sysfs.read_knobs()
        else:
            knobs_after = predict_knobs(self.current, self.changes)
        self.result['before'] = self._touched(self.current)
        self.result['after'] = self._touched(knobs_after)
        self.result['knobs'] = knobs_after
        self.apply_thp()
        self.diffs.append(dict(before=self.result['before'], after=self.result['after']))

    def apply_thp(self):
        """Write max_ptes_none when planned (outside check mode); its before/after and the THP state."""
        wanted = self.module.params['thp_max_ptes_none']
        if wanted is None:
            return
        before = self.thp.max_ptes_none()
        if self.thp_changes and not self.module.check_mode:
            try:
                self.thp.write_max_ptes_none(wanted)
            except ThpError as err:
                self.module.fail_json(msg=to_native(err), **self.result)
        enabled = self.thp.mode()
        after = wanted if self.module.check_mode else self.thp.max_ptes_none()
        self.result['before']['thp_max_ptes_none'] = before
        self.result['after']['thp_max_ptes_none'] = after
        self.result['thp'] = {'enabled': enabled, MAX_PTES_NONE: after, 'zero_pages_at_risk': zero_pages_at_risk(enabled, after)}

    def apply_persist(self):
        """Write the tmpfiles.d file when it differs (outside check mode)."""
        path = self.module.params['persist_path']
        self.result['persist_path'] = path
        content = tmpfiles_content(self.wanted, self.module.params['thp_max_ptes_none'])
        existing = read_file(path)
        if existing == content:
            return
        self.result['changed'] = True
        self.diffs.append(dict(before_header=path, after_header=path, before=existing or '', after=content))
        if not self.module.check_mode:
            try:
                write_persist(self.module, path, content)
            except (IOError, OSError) as err:
                self.module.fail_json(msg='Could not write %s: %s' % (path, to_native(err)), **self.result)

    def results(self):
        if self.module._diff:
            self.result['diff'] = self.diffs[0] if len(self.diffs) == 1 else self.diffs
        return self.result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params['unmerge_margin_mib'] < 0 or module.params['unmerge_timeout'] < 1:
        module.fail_json(msg='unmerge_margin_mib must be at least 0 (MiB) and unmerge_timeout at least 1 (seconds); got %s and %s'
                         % (module.params['unmerge_margin_mib'], module.params['unmerge_timeout']))
    manager = KsmManager(module)
    manager.plan()
    manager.apply_knobs()
    if module.params['persist']:
        manager.apply_persist()
    module.exit_json(**manager.results())


if __name__ == '__main__':
    main()
