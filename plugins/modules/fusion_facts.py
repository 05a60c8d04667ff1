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
    merged with the kernel zero page, and the net profit."
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
            general_profit:
              description:
                - Net saving in bytes as the kernel computes it (saved bytes minus KSM's own metadata); may be
                  negative. Null on kernels without C(general_profit).
              type: int
              sample: 49000000
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
            - C(mergeable), C(merged_bytes), C(zero_page_bytes), C(profit_bytes) and C(qemu_pid) are returned for
              libvirt VMs, C(shared_bytes) for VirtualBox VMs. Figures of a VM that does not run are null.
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
              description: Memory of the VM that KSM merged with the kernel zero page (C(ksm_zero_pages) times the
                page size); null when the kernel does not report it.
              type: int
            profit_bytes:
              description: The kernel's net KSM profit of the QEMU process in bytes (C(ksm_process_profit)); may be
                negative.
              type: int
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

import shlex
import socket
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.pagefusion.core.plugins.module_utils._backends import BACKEND_ARGS
from ansible_collections.pagefusion.core.plugins.module_utils._daemon_state import DEFAULT_STATE_PATH, read_state
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError, state_word
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import (
    DEFAULT_PROC_ROOT,
    DEFAULT_ROOT,
    KsmError,
    KsmSysfs,
)
from ansible_collections.pagefusion.core.plugins.module_utils import _libvirt

# Where KSM and the processes are read. Module-level so tests can point them at a temporary tree.
KSM_ROOT = DEFAULT_ROOT
PROC_ROOT = DEFAULT_PROC_ROOT
QEMU_RUN_DIRS = ('/run/libvirt/qemu', '/var/run/libvirt/qemu')
# libvirt drivers (conn.getType()) whose VMs are QEMU processes on the libvirt host.
QEMU_HYPERVISORS = ('QEMU',)

# VirtualBox metrics: what is read, and the base metrics that "metrics setup" must name (setup matches
# base metric names only: "RAM/VMM/Shared" would set nothing up).
VBOX_HOST_METRIC = 'RAM/VMM/Shared'
VBOX_VM_METRIC = 'Guest/RAM/Usage/Shared'
VBOX_HOST_BASE = 'RAM/VMM'
VBOX_VM_BASE = 'Guest/RAM/Usage'
# How long to wait for the first sample after a setup (the sampling period is 1 s), and how often to look.
VBOX_SETTLE_SECONDS = 2.0
VBOX_SETTLE_POLL = 0.5
VBOX_UNITS = {'B': 1, 'kB': 1024, 'MB': 1024 ** 2, 'GB': 1024 ** 3}

FACTS_BACKENDS = ('auto', 'libvirt', 'virtualbox', 'none')


# ---------------------------------------------------------------------------------------------
# Host

def ksm_host_facts(sysfs):
    """KSM figures of the host, or ``(facts, warning)`` with a warning when KSM is absent or unreadable."""
    facts = {
        'ksm_present': sysfs.present(),
        'ksm_running': False,
        'knobs': {},
        'counters': {},
        'page_size': sysfs.page_size,
        'shared_bytes': 0,
        'saved_bytes': 0,
        'general_profit': None,
        'ksmd_cpu_seconds': None,
    }
    if not facts['ksm_present']:
        return facts, ('KSM is not available on this host (%s does not exist; a kernel built without CONFIG_KSM?): '
                       'the KSM figures are empty.' % sysfs.root)
    try:
        everything = sysfs.read_all()
    except (KsmError, IOError, OSError) as exc:
        return facts, 'Cannot read KSM under %s: %s' % (sysfs.root, to_native(exc))
    facts.update({
        'ksm_running': everything['knobs'].get('run') == 1,
        'knobs': everything['knobs'],
        'counters': everything['counters'],
        'shared_bytes': everything['shared_bytes'],
        'saved_bytes': everything['saved_bytes'],
        'general_profit': everything['counters'].get('general_profit'),
        'ksmd_cpu_seconds': sysfs.ksmd_cpu_seconds(),
    })
    return facts, None


# ---------------------------------------------------------------------------------------------
# libvirt

def _bytes(pages, page_size):
    return None if pages is None else pages * page_size


def vm_entry(vm):
    """The keys every VM entry has, whatever the backend."""
    return {
        'backend': vm.backend,
        'uuid': vm.uuid,
        'power_state': vm.power_state,
        'page_fusion': state_word(vm.fusion),
        'page_fusion_live': None if vm.fusion_live is None else state_word(vm.fusion_live),
    }


def libvirt_vm_facts(vm, pid, sysfs):
    """The entry of one libvirt VM; ``pid`` is its QEMU pid or None."""
    entry = vm_entry(vm)
    stat = sysfs.process_ksm(pid) if pid is not None else None
    if stat is None:
        entry.update({'mergeable': None, 'merged_bytes': None, 'zero_page_bytes': None, 'profit_bytes': None,
                      'qemu_pid': pid})
        return entry
    entry.update({
        'mergeable': stat['mergeable'],
        'merged_bytes': _bytes(stat['merging_pages'], sysfs.page_size),
        'zero_page_bytes': _bytes(stat['zero_pages'], sysfs.page_size),
        'profit_bytes': stat['process_profit'],
        'qemu_pid': pid,
    })
    return entry


def is_remote_uri(uri, conn):
    """True when the libvirt connection reaches another machine (its QEMU processes are not here)."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        return False
    if not netloc:
        return False
    try:
        return conn.getHostname() != socket.gethostname()
    except Exception:  # pylint: disable=broad-except
        return True


def libvirt_vms(module, backend, sysfs):
    """``{name: entry}`` of every libvirt VM."""
    try:
        hypervisor = backend.conn.getType()
    except Exception:  # pylint: disable=broad-except
        hypervisor = None
    local_processes = hypervisor in QEMU_HYPERVISORS
    if local_processes and is_remote_uri(module.params['uri'], backend.conn):
        local_processes = False
        module.warn("libvirt URI '%s' is on another host: per-VM KSM figures are null (the QEMU processes are not on "
                    "this host) and the host figures are this host's. Run fusion_facts on the hypervisor host with a "
                    "local URI." % module.params['uri'])
    vms = {}
    for vm in backend.list_vms():
        pid = None
        if local_processes and not vm.is_off:
            pid = _libvirt.qemu_pid(vm.name, run_dirs=QEMU_RUN_DIRS, proc_root=PROC_ROOT)
        vms[vm.name] = libvirt_vm_facts(vm, pid, sysfs)
    return vms


# ---------------------------------------------------------------------------------------------
# VirtualBox

def vbox_bytes(rows, obj, metric):
    """The last value of a metric in bytes (VirtualBox reports kB), or None."""
    from ansible_collections.pagefusion.core.plugins.module_utils._vbox import metric_value
    value = metric_value(rows, obj, metric)
    if value is None:
        return None
    unit = next((row['unit'] for row in rows if row['object'] == obj and row['metric'] == metric), 'kB')
    return int(value * VBOX_UNITS.get(unit, 1024))


def _vbox_missing(rows, running):
    """The objects (``host`` and running VMs) whose metric has no value: ``[(label, setup target, base)]``."""
    missing = []
    if vbox_bytes(rows, 'host', VBOX_HOST_METRIC) is None:
        missing.append(('host', 'host', VBOX_HOST_BASE))
    for vm in running:
        if vbox_bytes(rows, vm.name, VBOX_VM_METRIC) is None:
            missing.append((vm.name, vm.uuid, VBOX_VM_BASE))
    return missing


def virtualbox_facts(backend, warn, sleep=time.sleep, clock=time.monotonic):
    """``(host_entry, {name: entry})`` of a VirtualBox host, setting metric collection up where needed."""
    from ansible_collections.pagefusion.core.plugins.module_utils._vbox import has_process
    records = backend.list_vms()
    running = [vm for vm in records if has_process(vm.power_state) and vm.uuid]
    metrics = [VBOX_HOST_METRIC, VBOX_VM_METRIC]
    rows = backend.query_metrics('*', metrics)
    setup = []
    missing = _vbox_missing(rows, running)
    for label, target, base in missing:
        try:
            backend.setup_metrics(target, [base])
        except FusionError as exc:
            # E.g. the VM was unregistered meanwhile: its figures stay null, the rest is still reported.
            warn('Cannot set VirtualBox metric collection up for %r: %s' % (label, exc))
            continue
        setup.append(target)
    if setup:
        deadline = clock() + VBOX_SETTLE_SECONDS
        while True:
            rows = backend.query_metrics('*', metrics)
            still = set(label for label, _target, _base in _vbox_missing(rows, running))
            if not still.intersection(label for label, _target, _base in missing) or clock() >= deadline:
                break
            sleep(VBOX_SETTLE_POLL)
    host = {'shared_bytes': vbox_bytes(rows, 'host', VBOX_HOST_METRIC), 'metrics_setup': setup}
    vms = {}
    for vm in records:
        entry = vm_entry(vm)
        entry['shared_bytes'] = vbox_bytes(rows, vm.name, VBOX_VM_METRIC) if vm in running else None
        vms[vm.name] = entry
    if setup:
        empty = [label for label, _target, _base in _vbox_missing(rows, running)]
        if empty:
            host['note'] = ('No value yet for %s: this run set VirtualBox metric collection up (VBoxManage metrics '
                            'setup), and VirtualBox collects only after setup, so the first read after it may be '
                            'empty (null). Read the facts again in a few seconds. A VM without the Guest Additions '
                            'never reports Guest/RAM/Usage/Shared.' % ', '.join(repr(label) for label in empty))
    return host, vms


def _open_virtualbox(module):
    from ansible_collections.pagefusion.core.plugins.module_utils._vbox import VirtualBoxBackend
    return VirtualBoxBackend(module)


# ---------------------------------------------------------------------------------------------
# Backend choice

def open_backend(module):
    """``(backend or None, problems)``: like _backends.open_backend, but auto and none never fail."""
    wanted = module.params['backend']
    if wanted == 'none':
        return None, []
    if wanted == 'libvirt':
        if not _libvirt.HAS_LIBVIRT:
            module.fail_json(msg=missing_required_lib('libvirt-python', reason='for backend=libvirt'))
        try:
            return _libvirt.LibvirtBackend(module.params['uri']), []
        except FusionError as exc:
            module.fail_json(msg=str(exc))
    if wanted == 'virtualbox':
        try:
            return _open_virtualbox(module), []
        except FusionError as exc:
            module.fail_json(msg=str(exc))
    problems = []
    if _libvirt.HAS_LIBVIRT:
        try:
            return _libvirt.LibvirtBackend(module.params['uri']), []
        except FusionError as exc:
            problems.append('libvirt: %s' % exc)
    else:
        problems.append('libvirt: libvirt-python is not installed')
    try:
        return _open_virtualbox(module), []
    except FusionError as exc:
        problems.append('VirtualBox: %s' % exc)
    return None, problems


def main():
    argument_spec = dict(BACKEND_ARGS)
    argument_spec['backend'] = dict(BACKEND_ARGS['backend'], choices=list(FACTS_BACKENDS))
    argument_spec['daemon_state_path'] = dict(type='path', default=DEFAULT_STATE_PATH)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    sysfs = KsmSysfs(root=KSM_ROOT, proc_root=PROC_ROOT)
    host, warning = ksm_host_facts(sysfs)
    if warning and module.params['backend'] != 'virtualbox':
        module.warn(warning)
    host['daemon'], warning = read_state(module.params['daemon_state_path'])
    if warning:
        module.warn(warning)

    facts = {'backend': None, 'host': host, 'vms': {}}
    result = {'changed': False}
    backend, problems = open_backend(module)
    if problems:
        module.warn('No hypervisor backend is usable, so no VMs are reported (%s).' % '; '.join(problems))
    if backend is not None:
        facts['backend'] = backend.name
        try:
            if backend.name == 'libvirt':
                facts['vms'] = libvirt_vms(module, backend, sysfs)
            else:
                host['virtualbox'], facts['vms'] = virtualbox_facts(backend, module.warn)
                result['commands'] = [shlex.join(argv) for argv in backend.actions]
        except FusionError as exc:
            module.fail_json(msg=str(exc))
        finally:
            backend.close()

    result['ansible_facts'] = {'pagefusion': facts}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
