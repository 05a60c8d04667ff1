#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: fusion_facts
short_description: Report how much memory page fusion shares and saves, per host and per VM
version_added: 0.1.0
description:
  - Sets C(ansible_facts.pagefusion) with the memory that page fusion shares and saves on the host it runs on,
    and per VM.
  - "B(Host): Linux KSM (whether the kernel has it and whether C(ksmd) runs, every knob and counter under
    C(/sys/kernel/mm/ksm), the bytes it shares and saves, its net profit, the CPU time C(ksmd) has used) and
    the state of the C(pagefusiond) host daemon when its state file exists (O(daemon_state_path))."
  - "B(libvirt/KVM VMs): for each VM its power state, its page fusion setting (persistent definition and running
    instance) and, while it runs, what KSM does with its QEMU process right now, read from
    C(/proc/<qemu pid>/ksm_stat): whether its memory is mergeable, how much of it is merged, how much was
    merged with the kernel zero page, and the net profit; and whether its virtio balloon has free page
    reporting on (the guest hands freed memory back to the host)."
  - A warning, and RV(ansible_facts.pagefusion.host.general_profit_negative=true), when KSM's C(general_profit) is
    negative, that is KSM's own metadata costs more memory than it saves.
  - "B(VirtualBox VMs): for each VM its power state and page fusion setting and, while it runs, the VirtualBox
    metric C(Guest/RAM/Usage/Shared) (memory of the VM shared through Page Fusion); for the host, the metric
    C(RAM/VMM/Shared) (all memory shared between VMs)."
  - "Only reads, with one exception on VirtualBox hosts. VirtualBox collects metrics only after
    C(VBoxManage metrics setup), and forgets that setup when C(VBoxSVC) stops. When the host or a running VM
    has no value for these metrics, the module sets collection up for that object (C(metrics setup --period 1
    --samples 1), on the base metrics C(RAM/VMM) and C(Guest/RAM/Usage)), waits up to two seconds for the first
    sample and reads again. This also happens in check mode; it changes no VM and no setting, only what
    C(VBoxSVC) collects. The first read after a setup may still be empty (null); the result then says so in
    RV(ansible_facts.pagefusion.host.virtualbox.note)."
  - A host without KSM, or (with O(backend=auto)) without a usable hypervisor backend, is not a failure; the
    module returns what it can and a warning.
  - The figures are those of the host the module runs on. Run it on the hypervisor host itself with a local
    O(uri); with a remote O(uri) the per-VM KSM figures are null.
author:
  - pagefusion.core maintainers (@pagefusion)
extends_documentation_fragment:
  - pagefusion.core.backend
  - pagefusion.core.backend.attributes
attributes:
  check_mode:
    support: full
    details: Check mode reads the same figures. On VirtualBox hosts it also sets metric collection up when needed.
  diff_mode:
    support: none
  idempotent:
    support: full
  facts:
    support: full
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
options:
  backend:
    description:
      - Which hypervisor to report VMs of.
      - V(auto) uses libvirt when libvirt-python is installed and O(uri) answers, otherwise VirtualBox when
        C(VBoxManage) is on the PATH, otherwise none (with a warning).
      - V(libvirt) or V(virtualbox) use only that backend and fail clearly when it cannot be used.
      - V(none) reports the host only.
    choices: [auto, libvirt, virtualbox, none]
  daemon_state_path:
    description:
      - The JSON state file that the C(pagefusiond) host daemon writes.
      - Its content is returned as it is in RV(ansible_facts.pagefusion.host.daemon). A missing file gives
        null; a file that cannot be read or is not a JSON object gives null and a warning.
    type: path
    default: /run/pagefusiond/state.json
notes:
  - The per-VM figures of libvirt VMs need the QEMU process of the VM on this host, found through libvirt's pid file
    (C(/run/libvirt/qemu/<name>.pid)) or QEMU's C(-name guest=<name>) argument; reading another user's
    C(/proc/<pid>/ksm_stat) needs root.
  - The kernel counts the KSM page itself in a process's C(ksm_merging_pages). A VM whose pages are merged only
    with other VMs therefore reports the merged pages it shares, including the one copy that is kept; summing
    RV(ansible_facts.pagefusion.vms.merged_bytes) over VMs gives more than the host saves. The host's
    RV(ansible_facts.pagefusion.host.saved_bytes) is what is really freed.
  - libvirt's C(test:///) driver has no QEMU processes, so its VMs report null per-VM KSM figures.
  - Sharing memory between VMs opens side channels between them (Flush+Reload, memory deduplication attacks).
seealso:
  - module: pagefusion.core.ksm
  - module: pagefusion.core.host_info
  - module: pagefusion.core.vm
  - name: Kernel Samepage Merging (kernel documentation)
    description: The KSM counters and the per-process C(ksm_stat) file.
    link: https://docs.kernel.org/admin-guide/mm/ksm.html
'''

EXAMPLES = r'''
- name: Read the page fusion figures of a KVM host
  pagefusion.core.fusion_facts:

- name: Show how much memory KSM saves on this host
  ansible.builtin.debug:
    msg: >-
      {{ (ansible_facts.pagefusion.host.saved_bytes / 1048576) | round(1) }} MiB saved,
      ksmd used {{ ansible_facts.pagefusion.host.ksmd_cpu_seconds | default(0, true) | round(1) }} s of CPU

- name: List running VMs whose memory KSM may not merge
  ansible.builtin.debug:
    msg: "{{ ansible_facts.pagefusion.vms | dict2items | selectattr('value.mergeable', 'false') | map(attribute='key') | list }}"

- name: The host only (no hypervisor), with the daemon's state from another place
  pagefusion.core.fusion_facts:
    backend: none
    daemon_state_path: /var/lib/pagefusiond/state.json

- name: A VirtualBox host
  pagefusion.core.fusion_facts:
    backend: virtualbox
'''

RETURN = r'''
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: dict
  contains:
    pagefusion:
      description: Page fusion on this host.
      returned: always
      type: dict
      contains:
        backend:
          description: The backend whose VMs are in RV(ansible_facts.pagefusion.vms), null when none was used.
          type: str
          sample: libvirt
        host:
          description: The host's figures.
          type: dict
          contains:
            ksm_present:
              description: Whether the kernel has KSM (C(/sys/kernel/mm/ksm) exists).
              type: bool
            ksm_running:
              description: Whether C(ksmd) runs (the C(run) knob is 1).
              type: bool
            knobs:
              description: Every KSM knob this kernel has, with its value. Empty without KSM.
              type: dict
              sample: {"run": 1, "pages_to_scan": 100, "sleep_millisecs": 20, "advisor_mode": "none"}
            counters:
              description: Every read-only KSM counter this kernel has (C(pages_shared), C(pages_sharing),
                C(ksm_zero_pages), C(general_profit), C(full_scans), ...). Empty without KSM.
              type: dict
              sample: {"pages_shared": 4200, "pages_sharing": 12400, "ksm_zero_pages": 0, "full_scans": 3}
            page_size:
              description: The kernel's page size in bytes.
              type: int
              sample: 4096
            shared_bytes:
              description: Memory held by the shared KSM pages, C(pages_shared) times the page size.
              type: int
              sample: 17203200
            saved_bytes:
              description: Memory that KSM saves, (C(pages_sharing) + C(ksm_zero_pages)) times the page size.
              type: int
              sample: 50790400
            real_saved_bytes:
              description:
                - Memory that page sharing really saves, as the C(pagefusiond) daemon last sampled it (at
                  RV(ansible_facts.pagefusion.host.real_saved_sampled)) - the anonymous Rss minus anonymous Pss of the
                  processes with mergeable memory (C(/proc/<pid>/smaps_rollup)) plus their KSM zero pages.
                - RV(ansible_facts.pagefusion.host.saved_bytes) comes from KSM's counters, which keep counting a page
                  whose sharing a write broke until C(ksmd) visits it again, so under write churn it is higher than
                  this figure.
                - Null when no daemon state is there or the daemon has not sampled yet.
              type: int
              sample: 50331648
            real_saved_sampled:
              description: Unix time when the daemon sampled RV(ansible_facts.pagefusion.host.real_saved_bytes); null
                without a sample.
              type: float
              sample: 1767322800.5
            general_profit:
              description:
                - Net saving in bytes as the kernel computes it (saved bytes minus KSM's own metadata); may be
                  negative. Null on kernels without C(general_profit).
              type: int
              sample: 49000000
            general_profit_negative:
              description:
                - True when RV(ansible_facts.pagefusion.host.general_profit) is negative, that is KSM's metadata
                  costs more memory than KSM saves; the module then also warns. Null on kernels without
                  C(general_profit).
              type: bool
              sample: false
            ksmd_cpu_seconds:
              description: CPU seconds the C(ksmd) kernel thread has used since boot; null when unknown.
              type: float
              sample: 12.5
            daemon:
              description:
                - The content of O(daemon_state_path) as the C(pagefusiond) daemon wrote it (among others
                  C(phase), C(knobs), C(saved_bytes), C(ksmd_cpu_percent), C(updated)); null when the file does
                  not exist or cannot be read.
              type: dict
              sample: {"phase": "maintain", "saved_bytes": 50790400, "ksmd_cpu_percent": 1.5, "updated": "2026-01-02T03:04:05Z"}
            virtualbox:
              description: VirtualBox's host figures.
              type: dict
              returned: when the VirtualBox backend was used
              contains:
                shared_bytes:
                  description: The metric C(RAM/VMM/Shared) in bytes (all memory shared between VMs through
                    Page Fusion); null when VirtualBox has no value yet.
                  type: int
                metrics_setup:
                  description: The objects (V(host) or VM UUIDs) for which this run set metric collection up.
                  type: list
                  elements: str
                note:
                  description: Set when this run set metric collection up and a figure is still null.
                  type: str
        vms:
          description:
            - One entry per VM of the backend, keyed by VM name.
            - C(mergeable), C(merged_bytes), C(zero_page_bytes), C(profit_bytes), C(qemu_pid),
              C(free_page_reporting) and C(free_page_reporting_live) are returned for libvirt VMs, C(shared_bytes)
              for VirtualBox VMs. Figures of a VM that does not run are null.
          type: dict
          contains:
            backend:
              description: V(libvirt) or V(virtualbox).
              type: str
            uuid:
              description: VM UUID.
              type: str
            power_state:
              description: Power state (libvirt as virsh names it, VirtualBox's short VMState).
              type: str
              sample: running
            page_fusion:
              description: Page fusion in the persistent definition, V(enabled) or V(disabled).
              type: str
            page_fusion_live:
              description: Page fusion of the running instance; null when the VM is off.
              type: str
            mergeable:
              description:
                - Whether KSM may merge the VM's memory right now (C(ksm_mergeable) of its QEMU process).
                - Null when the VM does not run, its QEMU process is not found, or the kernel does not report it.
              type: bool
            merged_bytes:
              description:
                - Memory of the VM merged by KSM right now, C(ksm_merging_pages) times the page size.
                - The kernel counts the KSM page itself in this figure (see the notes).
              type: int
            zero_page_bytes:
              description:
                - Memory of the VM that KSM merged with the kernel zero page, C(ksm_zero_pages) of its QEMU process
                  (C(/proc/<pid>/ksm_stat)) times the page size; null when the kernel does not report it.
                - Zero pages count only while the host's C(use_zero_pages) is on; a guest that zeroes the memory it
                  frees (C(init_on_free=1)) gives it back here.
              type: int
            profit_bytes:
              description: The kernel's net KSM profit of the QEMU process in bytes, C(ksm_process_profit) of its
                C(/proc/<pid>/ksm_stat) ((merging + zero pages) times the page size minus KSM's metadata for the
                process); may be negative.
              type: int
            free_page_reporting:
              description: Whether the VM's persistent definition has free page reporting on its virtio balloon
                (C(<memballoon model='virtio' freePageReporting='on'/>)). libvirt only.
              type: bool
            free_page_reporting_live:
              description: Whether the running instance has free page reporting; null when the VM is off. libvirt
                only.
              type: bool
            qemu_pid:
              description: Pid of the VM's QEMU process on this host.
              type: int
            shared_bytes:
              description: The VirtualBox metric C(Guest/RAM/Usage/Shared) in bytes; needs the Guest Additions and a
                running VM, null otherwise.
              type: int
commands:
  description:
    - The exact C(VBoxManage) command lines that ran, in order (C(metrics setup) among them when collection had to be
      set up).
  returned: when the VirtualBox backend was used
  type: list
  elements: str
  sample: ["/usr/bin/VBoxManage list vms", "/usr/bin/VBoxManage metrics query '*' RAM/VMM/Shared,Guest/RAM/Usage/Shared"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pagefusion.core.plugins.module_utils._backends import BACKEND_ARGS, open_backend
from ansible_collections.pagefusion.core.plugins.module_utils._daemon_state import DEFAULT_STATE_PATH, read_state, real_saving
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import (
    DEFAULT_PROC_ROOT,
    DEFAULT_ROOT,
    KsmSysfs,
    host_summary,
)

# Where KSM and the processes are read. Module-level so tests can point them at a temporary tree.
KSM_ROOT = DEFAULT_ROOT
PROC_ROOT = DEFAULT_PROC_ROOT

FACTS_BACKENDS = ('auto', 'libvirt', 'virtualbox', 'none')


def host_facts(module, sysfs):
    """KSM and the daemon's state; a host without KSM is warned about unless only VirtualBox was asked for."""
    host, warning = host_summary(sysfs)
    if warning and module.params['backend'] != 'virtualbox':
        module.warn(warning)
    host['daemon'], warning = read_state(module.params['daemon_state_path'])
    if warning:
        module.warn(warning)
    host['real_saved_bytes'], host['real_saved_sampled'] = real_saving(host['daemon'])
    return host


def warn_negative_profit(module, host):
    """KSM whose metadata outweighs what it saves: a fact, and a warning that says what to do."""
    profit = host.get('general_profit')
    host['general_profit_negative'] = None if profit is None else profit < 0
    if host['general_profit_negative']:
        module.warn('KSM costs this host more memory than it saves: general_profit is %d bytes (%d bytes saved, '
                    'minus the metadata of every page KSM tracks). Look for VMs with a negative profit_bytes and '
                    'disable page fusion for them, or stop KSM and unmerge (pagefusion.core.ksm with run: 2) if '
                    'this host has little to share.' % (profit, host.get('saved_bytes') or 0))


def backend_facts(module, facts, result, sysfs):
    """The VMs of the backend (auto: the first usable one, or none with a warning)."""
    backend, problems = open_backend(module, required=module.params['backend'] != 'auto')
    if problems:
        module.warn('No hypervisor backend is usable, so no VMs are reported (%s).'
                    % '; '.join('%s: %s' % problem for problem in problems))
    if backend is None:
        return
    facts['backend'] = backend.name
    try:
        figures, facts['vms'] = backend.usage_facts(sysfs, module.warn)
        if figures is not None:
            facts['host'][backend.name] = figures
        commands = backend.commands()
        if commands is not None:
            result['commands'] = commands
    except FusionError as exc:
        module.fail_json(msg=str(exc))
    finally:
        backend.close()


def main():
    argument_spec = dict(BACKEND_ARGS)
    argument_spec['backend'] = dict(BACKEND_ARGS['backend'], choices=list(FACTS_BACKENDS))
    argument_spec['daemon_state_path'] = dict(type='path', default=DEFAULT_STATE_PATH)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    sysfs = KsmSysfs(root=KSM_ROOT, proc_root=PROC_ROOT)
    facts = {'backend': None, 'host': host_facts(module, sysfs), 'vms': {}}
    warn_negative_profit(module, facts['host'])
    result = {'changed': False}
    backend_facts(module, facts, result, sysfs)
    result['ansible_facts'] = {'pagefusion': facts}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
