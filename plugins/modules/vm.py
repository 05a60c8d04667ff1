#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vm
short_description: Switch page fusion (memory page sharing) of VMs on or off
version_added: 0.1.0
description:
  - Enables or disables page fusion for one VM, a list of VMs, or every VM whose name matches a pattern.
  - "B(libvirt/KVM): page fusion is Linux KSM merging of the guest's RAM. It is enabled when the domain's
    persistent definition has no C(<memoryBacking><nosharepages/></memoryBacking>), disabled when it has.
    QEMU reads this only when it starts (C(-machine mem-merge=off)), so the module edits the persistent
    definition and leaves every other part of it as it was."
  - "B(VirtualBox): page fusion is the VM's C(--page-fusion) setting (C(--pagefusion) before VirtualBox 7.0),
    switched with C(VBoxManage modifyvm); it is used by Windows 2000 and later guests on 64-bit x86 hosts that
    are not macOS. Enabling it on another guest works but has no effect, and the module warns. A VM with a saved
    state is refused (its settings are frozen until the state is discarded). VirtualBox 7.2 cannot switch it
    (it fails with I(Page fusion is only supported on 64-bit hosts)); such hosts, and 32-bit or macOS hosts,
    are reported as unsupported (RV(unsupported=true), a warning), not failed, and nothing is changed."
  - A definition is only changed while the VM is shut off. What happens to a VM that runs is set by
    O(when_running).
  - All VMs are read once, every change is planned, and nothing is changed if any VM cannot be handled
    (unknown name, running VM with O(when_running=fail), transient VM). Check mode and diff mode use the same
    plan as a real run, so they predict exactly what a real run does.
  - Sharing memory between VMs opens side channels between them (Flush+Reload, memory deduplication attacks).
    Only enable page fusion between VMs that trust each other.
  - "B(libvirt) also manages the QEMU guest agent's channel (O(guest_agent_channel)), with which the host can ask
    the guest for its OS (P(pagefusion.core.host_info#module) then reports it). It is part of the same persistent
    definition, so it follows the same rules as page fusion: changed only while the VM is shut off, O(when_running)
    for running VMs, the same check and diff mode."
  - "B(libvirt) also manages free page reporting of the VM's virtio memory balloon (O(free_page_reporting)): the
    guest hands blocks of memory it has freed back to the host, which drops them. It is part of the same persistent
    definition and follows the same rules. When a run changes page fusion and another setting of one VM, libvirt
    gets one new definition that carries all of them (one redefine)."
author:
  - pagefusion.core maintainers (@pagefusion)
extends_documentation_fragment:
  - pagefusion.core.backend
  - pagefusion.core.backend.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - Exact name of the VM (a string), or a list of exact names.
      - Names are matched literally, so names with spaces, quotes, commas, C(*) or other special characters
        are safe. A single string is one name; it is never split at commas.
      - Exactly one of O(name) and O(pattern) is required.
    type: raw
    aliases: [names]
  pattern:
    description:
      - Shell-style pattern (C(*), C(?), C([seq])) matched against every VM name, case-sensitively.
      - A pattern that matches no VM is not an error; the module returns a warning and changes nothing.
    type: str
  state:
    description:
      - V(enabled) lets the VM's memory be shared with other VMs; V(disabled) keeps it private.
      - When omitted, page fusion is left as it is. At least one of O(state), O(guest_agent_channel) and
        O(free_page_reporting) is required.
    type: str
    choices: [enabled, disabled]
  guest_agent_channel:
    description:
      - libvirt only. V(true) adds the QEMU guest agent's channel to the persistent definition,
        C(<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>) (libvirt picks the
        socket path and adds the virtio-serial controller); V(false) removes every such channel.
      - When omitted (null), the channel is left as it is.
      - The agent inside the guest is installed by the P(pagefusion.core.guest_agent#role) role.
      - Like page fusion, it is changed only while the VM is shut off; see O(when_running). The VirtualBox backend
        has no such channel and refuses this option.
    type: bool
  free_page_reporting:
    description:
      - libvirt only. V(true) turns on free page reporting of the VM's virtio memory balloon,
        C(<memballoon model='virtio' freePageReporting='on'/>) in the persistent definition. A VM without a balloon,
        or with C(model='none'), gets a virtio balloon; the rest of the definition stays as it was. The guest kernel
        (Linux 5.7 or later with the virtio balloon driver) then reports freed memory to the host, which drops it.
      - V(false) removes C(freePageReporting) from the balloon (libvirt's default is off) and keeps the balloon.
      - When omitted (null), free page reporting is left as it is.
      - It needs libvirt 6.9.0 and QEMU 5.1.0 or later (P(pagefusion.core.host_info#module) reports whether the
        host has them); turning it on where either is older is refused and nothing is changed.
      - Like page fusion, it is changed only while the VM is shut off (QEMU reads it when it starts); see
        O(when_running). The VirtualBox backend does not support it and refuses this option.
    type: bool
    version_added: 0.1.0
  when_running:
    description:
      - What to do with a VM that is not shut off and needs a change.
      - V(fail) stops with an error that names the VM and its state; nothing is changed, on any VM.
      - V(restart) shuts the VM down gracefully, waits up to O(shutdown_timeout) seconds, changes it, starts it
        again and waits until it runs. A VM that does not stop in time is left running and unchanged and the
        module fails, unless O(force_off=true). If the change itself fails after the shutdown (for example libvirt
        refuses the new definition), the VM is started again as it was and the module fails.
        A paused (or pmsuspended) libvirt guest cannot act on a graceful shutdown and would come back running, so
        it is refused and left as it is (wake it first, or use V(defer)).
        It also restarts a VM whose definition is already right but that still runs with the old setting.
        VirtualBox VMs are shut down with C(VBoxManage controlvm <uuid> acpipowerbutton) (C(poweroff) with
        O(force_off=true)) and started again with C(VBoxManage startvm <uuid> --type headless), so a VM that had
        a GUI window comes back headless.
      - V(defer) (libvirt only) changes the persistent definition now and returns RV(restart_required=true);
        the change takes effect at the VM's next cold boot. VirtualBox cannot change a running VM's settings,
        so with the VirtualBox backend a running VM that needs a change is refused with an error.
    type: str
    choices: [fail, restart, defer]
    default: fail
  shutdown_timeout:
    description:
      - Seconds to wait for a graceful shutdown, and for the VM to run again, with O(when_running=restart).
    type: int
    default: 120
  force_off:
    description:
      - With O(when_running=restart), power the VM off hard when it does not shut down within
        O(shutdown_timeout). The guest loses what it had not written to disk.
    type: bool
    default: false
  allow_cross_tenant:
    description:
      - A VM may carry a tenant label (libvirt - C(<tenant name="..."/>) in the domain metadata namespace
        C(urn:pagefusion:core:1); VirtualBox - the extradata key C(pagefusion/tenant)).
      - By default the module refuses to enable page fusion on a labelled VM when a VM with another label on
        the same host has page fusion enabled (in its definition or in its running instance), and the other way
        round; enabling VMs of two tenants in one call is refused too. Nothing is changed then.
      - Set V(true) only when those tenants trust each other. Shared pages are a side channel between the VMs
        that share them.
      - VMs without a label are not counted as another tenant; enabling a labelled VM next to them gives a
        warning.
    type: bool
    default: false
  unmerge_margin_mib:
    description:
      - A running VM restarted without page fusion (O(when_running=restart)) takes back the memory it had merged,
        because every merged page needs its own copy again. Before anything changes, the module compares what each such
        VM has merged (libvirt - C(ksm_stat) of its QEMU process, C(ksm_merging_pages) plus C(ksm_zero_pages),
        added up over the VMs of the run in order) with C(MemAvailable) from C(/proc/meminfo) minus this margin,
        in MiB, and refuses the VMs that do not fit, with the figures; nothing is changed then, on any VM. Check
        mode reports the same refusal. The figures are in RV(vms[].unmerge_fit).
      - VirtualBox VMs, and libvirt VMs behind a remote URI, are not measured (a warning says so).
    type: int
    default: 1024
    version_added: 0.1.0
  unmerge_when_short:
    description:
      - Restart VMs without page fusion even when what they take back does not fit (see O(unmerge_margin_mib));
        the module warns with the figures instead of failing.
    type: bool
    default: false
    version_added: 0.1.0
notes:
  - VMs are handled one after the other. To restart many running VMs with a bound on how many are down at once,
    use the P(pagefusion.core.page_fusion#role) role.
  - With the libvirt C(test:///) driver the state lives in the module's process only, so changes are not kept
    between tasks.
seealso:
  - module: pagefusion.core.host_info
  - name: libvirt domain XML, memoryBacking
    description: The C(<nosharepages/>) element.
    link: https://libvirt.org/formatdomain.html#memory-backing
'''

EXAMPLES = r'''
- name: Enable page fusion on one shut-off VM
  pagefusion.core.vm:
    name: win10-build-01
    state: enabled

- name: Disable page fusion on every tenant-a VM, restarting running ones gracefully
  pagefusion.core.vm:
    pattern: 'tenant-a-*'
    state: disabled
    when_running: restart
    shutdown_timeout: 300

- name: Enable it on running VMs at their next cold boot (libvirt)
  pagefusion.core.vm:
    name:
      - web 1
      - web "2"
    state: enabled
    when_running: defer
  register: fusion

- name: Show which VMs still need a restart
  ansible.builtin.debug:
    msg: "{{ fusion.vms | selectattr('restart_required') | map(attribute='name') | list }}"

- name: Give a shut-off libvirt VM the QEMU guest agent channel, leaving page fusion as it is
  pagefusion.core.vm:
    name: debian-12-web
    guest_agent_channel: true

- name: Enable page fusion and free page reporting in one definition change, at the next cold boot
  pagefusion.core.vm:
    name: debian-12-web
    state: enabled
    free_page_reporting: true
    when_running: defer

- name: A VirtualBox host
  pagefusion.core.vm:
    name: Windows 11 desktop
    state: enabled
    backend: virtualbox
'''

RETURN = r'''
backend:
  description: The backend that was used.
  returned: always
  type: str
  sample: libvirt
vms:
  description: One entry per selected VM, in the order they were selected.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
      sample: web 1
    uuid:
      description: VM UUID.
      type: str
    backend:
      description: The backend of the VM.
      type: str
    power_state:
      description: Power state after the run (libvirt as virsh names it, VirtualBox's short VMState).
      type: str
      sample: shut off
    page_fusion:
      description: Page fusion in the persistent definition after the run (predicted in check mode).
      type: str
      sample: enabled
    page_fusion_live:
      description: Page fusion of the running instance, null when the VM is off or the backend cannot tell.
      type: str
    page_fusion_before:
      description: Page fusion in the definition before the run.
      type: str
      sample: disabled
    page_fusion_after:
      description: Page fusion in the definition after the run (predicted in check mode).
      type: str
      sample: enabled
    changed:
      description: Whether this VM was (or, in check mode, would be) changed.
      type: bool
    restart_required:
      description: The VM runs with a setting other than the requested one and needs a cold restart.
      type: bool
    actions:
      description:
        - What was (or would be) done to this VM, in order; check mode returns exactly what the real run does.
        - "libvirt: a description of each step."
        - "VirtualBox: the exact C(VBoxManage) command lines that run, shell-quoted and replayable, with the VM
          addressed by UUID. Waiting and fallbacks follow as a trailing C(#) comment (for example the
          C(showvminfo) polling after C(controlvm <uuid> acpipowerbutton))."
      type: list
      elements: str
      sample:
        - "/usr/bin/VBoxManage controlvm 5d3ec6c7-0a1b-4c2d-8e3f-000000000001 acpipowerbutton  # then poll ..."
        - /usr/bin/VBoxManage modifyvm 5d3ec6c7-0a1b-4c2d-8e3f-000000000001 --page-fusion on
        - "/usr/bin/VBoxManage startvm 5d3ec6c7-0a1b-4c2d-8e3f-000000000001 --type headless  # then wait ..."
    applied:
      description: Whether the actions were carried out (false in check mode).
      type: bool
    guest_agent_channel:
      description: Whether the persistent definition has the QEMU guest agent channel after the run (predicted in
        check mode). libvirt only.
      type: bool
      returned: when the backend is libvirt
    guest_agent_channel_before:
      description: Whether the definition had the guest agent channel before the run.
      type: bool
      returned: when O(guest_agent_channel) is set
    guest_agent_channel_after:
      description: Whether the definition has the guest agent channel after the run (predicted in check mode).
      type: bool
      returned: when O(guest_agent_channel) is set
    free_page_reporting:
      description: Whether the persistent definition has free page reporting on the virtio balloon after the run
        (predicted in check mode). libvirt only.
      type: bool
      returned: when the backend is libvirt
    free_page_reporting_before:
      description: Whether the definition had free page reporting before the run.
      type: bool
      returned: when O(free_page_reporting) is set
    free_page_reporting_after:
      description: Whether the definition has free page reporting after the run (predicted in check mode).
      type: bool
      returned: when O(free_page_reporting) is set
    unmerge_fit:
      description:
        - For a running VM restarted without page fusion, the memory that takes back and what the host has, as
          compared before anything changed (see O(unmerge_margin_mib)).
        - C(take_back_bytes) includes what the VMs before it in this run take back; C(vm_merged_bytes) is its own.
      type: dict
      returned: when the VM is restarted (or would be) without page fusion and its merged memory is known
      sample: {"vm_merged_bytes": 33554432, "take_back_bytes": 33554432, "mem_available_bytes": 24627941376,
               "margin_bytes": 1073741824, "room_bytes": 23554199552, "fits": true, "take_back_mib": 32.0,
               "mem_available_mib": 23486.9, "margin_mib": 1024.0}
    unsupported:
      description:
        - Why the host cannot switch page fusion (VirtualBox 7.2, a 32-bit or macOS host); only set then.
        - Such a VM is left as it is, with no actions, and the module warns instead of failing.
      type: str
      returned: when the host cannot switch page fusion and this VM needed a change
actions:
  description: Every action of every VM, in order (see RV(vms[].actions)).
  returned: always
  type: list
  elements: str
  sample: ["define 'web 1' without <memoryBacking><nosharepages/> (page fusion enabled)"]
restart_required:
  description: True when at least one VM needs a cold restart for the requested state to take effect.
  returned: always
  type: bool
unsupported:
  description: True when the host cannot switch page fusion (the VMs that needed a change are listed in RV(vms)).
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pagefusion.core.plugins.module_utils._backends import BACKEND_ARGS, open_backend
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import (
    STEP_SET_DEFINITION,
    STEP_SHUTDOWN,
    WHEN_RUNNING_CHOICES,
    FusionError,
    UnsupportedError,
    apply_plan,
    check_unmerge_fit,
    describe_plan,
    merged_bytes_by_vm,
    plan_vm,
    result_for,
    select_vms,
    state_word,
    unmerges_on_restart,
)
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import KsmSysfs
from ansible_collections.pagefusion.core.plugins.module_utils._tenancy import check_plans
from ansible_collections.pagefusion.core.plugins.module_utils._unmerge_fit import DEFAULT_MARGIN_MIB, read_mem_available

MAX_NAMES_IN_ERROR = 20
# Definition settings besides page fusion, by option name (see _fusion.plan_vm).
SETTINGS = ('guest_agent_channel', 'free_page_reporting')
NOTHING_CHANGED = 'Nothing was changed.'


def normalize_names(module, names):
    """One name or a list of names; unlike type=list, a string is never split at commas."""
    if names is None:
        return None
    if not isinstance(names, list):
        names = [names]
    if not names:
        module.fail_json(msg='name is an empty list: give at least one VM name, or use pattern')
    bad = [n for n in names if isinstance(n, (dict, list)) or n is None or n == '']
    if bad:
        module.fail_json(msg='name must be a VM name or a list of VM names; got %r' % (bad[0],))
    return [n if isinstance(n, str) else str(n) for n in names]


class VmManager(object):
    """One run of the module, in phases: select, plan, refuse, apply, results.

    Every VM is read once and every change planned before anything changes; check mode and diff mode
    use the very same plans as a real run.
    """

    def __init__(self, module, backend):
        self.module = module
        self.backend = backend
        self.params = module.params
        self.want = None if self.params['state'] is None else self.params['state'] == 'enabled'
        self.settings = dict((key, self.params[key]) for key in SETTINGS if self.params[key] is not None)
        self.vms, self.selected, self.plans = [], [], []
        self.before, self.entries, self.actions = {}, [], []

    def run(self):
        self.select()
        self.plan()
        self.refuse()
        self.apply()
        return self.results()

    # -- select ---------------------------------------------------------------------------------

    def select(self):
        """Read every VM once and pick the ones named; unknown names fail before anything changes."""
        unsupported = sorted(set(self.settings) - set(self.backend.supported_settings))
        if unsupported:
            self.module.fail_json(msg='%s: not supported by this backend (%s); the QEMU guest agent channel and free page '
                                      'reporting are libvirt only. Leave the option out for %s VMs. Nothing was changed.'
                                      % (', '.join(unsupported), self.backend.name, self.backend.name))
        self.vms = self.backend.list_vms()
        self.selected, missing = select_vms(self.vms, names=self.params['name'], pattern=self.params['pattern'])
        if missing:
            self._fail_missing(missing)
        if self.params['pattern'] is not None and not self.selected:
            self.module.warn("pattern %r matches no VM on the %s backend; nothing to do."
                             % (self.params['pattern'], self.backend.name))

    def _fail_missing(self, missing):
        known = sorted(vm.name for vm in self.vms)
        shown = ', '.join(repr(n) for n in known[:MAX_NAMES_IN_ERROR]) + (' …' if len(known) > MAX_NAMES_IN_ERROR else '')
        where = " at '%s'" % self.params['uri'] if self.backend.name == 'libvirt' else ''
        self.module.fail_json(
            msg='VM %s not found on the %s backend%s. Nothing was changed. Known VMs: %s. '
                'Use pagefusion.core.host_info to list them.'
                % (', '.join(repr(n) for n in missing), self.backend.name, where, shown or 'none'),
            missing=missing)

    # -- plan -----------------------------------------------------------------------------------

    def plan(self):
        self.plans = [plan_vm(vm, self.want, self.params['when_running'], can_defer=self.backend.can_defer,
                              settings=self.settings) for vm in self.selected]
        self._refuse_unrestartable()
        self._refuse_unsupported_settings()
        # A host that cannot switch page fusion at all (VirtualBox 7.2, 32-bit or macOS hosts) is reported, not
        # failed. It wins over a VM's own blocker (running, saved): shutting that VM down would not help.
        unsupported = self.backend.unsupported_reason()
        if unsupported:
            for plan in self.plans:
                if plan.changes or plan.error:
                    plan.unsupported, plan.error = unsupported, None

    def _refuse_unrestartable(self):
        """A VM the backend cannot restart in its state (e.g. a paused libvirt guest) is refused, not shut down."""
        for plan in self.plans:
            blocker = plan.vm.details.get('restart_blocker')
            if blocker and any(step == STEP_SHUTDOWN for step, _arg in plan.steps):
                plan.error, plan.steps = blocker, []

    def _refuse_unsupported_settings(self):
        """A setting this host cannot take (e.g. free page reporting with an old libvirt or QEMU) is refused."""
        for plan in self.plans:
            for key, value in self._definition_changes(plan).items():
                reason = self.backend.setting_refusal(key, value)
                if reason and not plan.error:
                    plan.error = ("VM '%s': %s=%s is refused on this host: %s. Upgrade them, or leave %s out."
                                  % (plan.vm.name, key, str(value).lower(), reason, key))

    @staticmethod
    def _definition_changes(plan):
        return dict(item for step, arg in plan.steps if step == STEP_SET_DEFINITION for item in arg.items())

    # -- refuse ---------------------------------------------------------------------------------

    def refuse(self):
        """Fail, changing nothing, when any plan cannot run or would mix tenants."""
        errors = [plan.error for plan in self.plans if plan.error]
        if not errors and not self.params['allow_cross_tenant']:
            tenant_errors, tenant_warnings = check_plans(self.vms, self.plans)
            errors.extend(tenant_errors)
            for warning in tenant_warnings:
                self.module.warn(warning)
        if not errors:
            errors.extend(self._unmerge_refusals())
        if not errors:
            return
        refused = [result_for(plan, [], False) for plan in self.plans]
        for entry in refused:
            entry['changed'] = False
        # Some backend messages already say it (e.g. VirtualBox's saved-state one): say it once.
        errors = [error[:-len(NOTHING_CHANGED)].rstrip() if error.endswith(NOTHING_CHANGED) else error
                  for error in errors]
        self.module.fail_json(msg='%s %s' % (' '.join(errors), NOTHING_CHANGED), vms=refused)

    def _unmerge_refusals(self, sysfs=None):
        """Refusals of VMs whose restart without page fusion takes back more memory than the host can spare."""
        if not any(unmerges_on_restart(plan) for plan in self.plans):
            return []
        sysfs = sysfs or KsmSysfs()
        merged = merged_bytes_by_vm(self.backend, sysfs, self.module.warn)
        errors, warnings = check_unmerge_fit(self.plans, merged, read_mem_available(sysfs.proc_root),
                                             self.params['unmerge_margin_mib'], self.params['unmerge_when_short'])
        for warning in warnings:
            self.module.warn(warning)
        return errors

    # -- apply ----------------------------------------------------------------------------------

    def apply(self):
        """Describe every plan and, outside check mode, carry it out, one VM after the other."""
        self._record_before()
        for plan in self.plans:
            self._apply_one(plan)

    def _record_before(self):
        for plan in self.plans:
            self.before[plan.vm.name] = {'page_fusion': state_word(plan.vm.fusion), 'power_state': plan.vm.power_state}
            self.before[plan.vm.name].update(plan.settings_before)
            if self.want and plan.before != self.want and not plan.unsupported:
                eligible, reasons = self.backend.eligibility(plan.vm)
                if not eligible:
                    self.module.warn("VM '%s' is not eligible for page fusion, so enabling it has no effect there: %s"
                                     % (plan.vm.name, '; '.join(reasons)))

    def _apply_one(self, plan):
        timeout, force_off = self.params['shutdown_timeout'], self.params['force_off']
        actions = [] if plan.unsupported else describe_plan(self.backend, plan, timeout, force_off)
        done = False
        if actions and not self.module.check_mode:
            try:
                apply_plan(self.backend, plan, timeout, force_off)
                done = True
            except UnsupportedError as exc:
                plan.unsupported = str(exc)
                actions = []
            except FusionError as exc:
                self._fail_applying(plan, actions, exc)
        self.actions.extend(actions)
        self.entries.append(result_for(plan, actions, done))

    def _fail_applying(self, plan, actions, exc):
        """Report what really happened to this VM: a refused shutdown changed nothing, while a failed start may
        leave it switched but off."""
        entry = result_for(plan, actions, False)
        entry['page_fusion'] = entry['page_fusion_after'] = state_word(plan.vm.fusion)
        for key in plan.settings_before:
            entry[key] = entry['%s_after' % key] = plan.vm.settings.get(key)
        entry['changed'] = (plan.vm.fusion != plan.before
                            or plan.vm.power_state != self.before[plan.vm.name]['power_state']
                            or any(plan.vm.settings.get(key) != value for key, value in plan.settings_before.items())
                            or plan.restarted)
        done_before = any(other['changed'] and other['applied'] for other in self.entries)
        self.entries.append(entry)
        self.module.fail_json(msg=str(exc), vms=self.entries, actions=self.actions + actions,
                              changed=done_before or entry['changed'])

    # -- results --------------------------------------------------------------------------------

    def results(self):
        after = self._after()
        result = dict(
            changed=any(entry['changed'] for entry in self.entries),
            backend=self.backend.name,
            vms=self.entries,
            actions=self.actions,
            restart_required=any(entry['restart_required'] for entry in self.entries),
            unsupported=any(entry.get('unsupported') for entry in self.entries),
        )
        if self.module._diff:
            result['diff'] = dict(before=self.before, after=after)
        return result

    def _after(self):
        """The diff's ``after``; warns once per reason about VMs left alone on a host that cannot switch."""
        after, left_alone = {}, {}
        for entry in self.entries:
            # In check mode the record still holds the old setting: report the predicted one.
            entry['page_fusion'] = entry['page_fusion_after']
            after[entry['name']] = {'page_fusion': entry['page_fusion_after'], 'power_state': entry['power_state']}
            after[entry['name']].update(dict((key, entry['%s_after' % key]) for key in self.settings))
            if entry.get('unsupported'):
                left_alone.setdefault(entry['unsupported'], []).append(entry['name'])
        for reason, names in left_alone.items():
            self.module.warn('Page fusion cannot be switched on this host, so %s %s: %s'
                             % (', '.join(repr(name) for name in names),
                                'is left as it is' if len(names) == 1 else 'are left as they are', reason))
        return after


def argument_spec():
    spec = dict(
        name=dict(type='raw', aliases=['names']),
        pattern=dict(type='str'),
        state=dict(type='str', choices=['enabled', 'disabled']),
        guest_agent_channel=dict(type='bool'),
        free_page_reporting=dict(type='bool'),
        when_running=dict(type='str', default='fail', choices=list(WHEN_RUNNING_CHOICES)),
        shutdown_timeout=dict(type='int', default=120),
        force_off=dict(type='bool', default=False),
        allow_cross_tenant=dict(type='bool', default=False),
        unmerge_margin_mib=dict(type='int', default=DEFAULT_MARGIN_MIB),
        unmerge_when_short=dict(type='bool', default=False),
    )
    spec.update(BACKEND_ARGS)
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('name', 'pattern')],
        required_one_of=[('name', 'pattern'), ('state', 'guest_agent_channel', 'free_page_reporting')],
        supports_check_mode=True,
    )
    if module.params['shutdown_timeout'] < 1:
        module.fail_json(msg='shutdown_timeout must be at least 1 second, got %s' % module.params['shutdown_timeout'])
    if module.params['unmerge_margin_mib'] < 0:
        module.fail_json(msg='unmerge_margin_mib must be at least 0 (MiB), got %s' % module.params['unmerge_margin_mib'])
    module.params['name'] = normalize_names(module, module.params['name'])

    backend = open_backend(module)[0]
    try:
        result = VmManager(module, backend).run()
    except FusionError as exc:
        module.fail_json(msg=str(exc))
    finally:
        backend.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
