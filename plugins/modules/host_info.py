#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pagefusion.core contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: host_info
short_description: Tell whether a host and its VMs are eligible for page fusion
version_added: 0.1.0
description:
  - Reports the host's CPU architecture and bitness, its OS, which hypervisor backends it has
    (libvirt reachable at O(uri) with the libvirt and hypervisor versions; VirtualBox's C(VBoxManage) and its
    version), whether the kernel has KSM and its current knobs, and every VM with its power state, its page
    fusion setting and whether it is eligible, with the reasons when it is not.
  - "Rules: libvirt/KVM hosts need Linux with KSM; a libvirt VM is eligible unless its RAM is shared,
    file/memfd-backed or on huge pages (KSM merges only private anonymous memory). VirtualBox needs a 64-bit
    host that is not macOS, a VirtualBox release that can switch page fusion (not 7.2), and a Windows 2000 or
    later guest."
  - "libvirt hosts: whether libvirt (6.9.0 or later) and QEMU (5.1.0 or later) can give VMs free page reporting on
    their virtio balloon (C(free_page_reporting) in RV(backends.libvirt)), read from the connection's libvirt and
    hypervisor versions; per VM whether it is on (RV(vms[].free_page_reporting))."
  - Read-only. Never changes anything.
author:
  - pagefusion.core maintainers (@pagefusion)
extends_documentation_fragment:
  - pagefusion.core.backend
  - pagefusion.core.backend.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  backend:
    description:
      - Which backends to report.
      - V(auto) reports every backend it finds; one that is absent or unreachable is reported with the reason,
        not as a failure.
      - V(libvirt) or V(virtualbox) report only that backend and fail clearly when it cannot be used (for
        example when C(VBoxManage) is not on the PATH). A VirtualBox release that cannot switch page fusion
        (7.2) is reported as unsupported, not failed.
notes:
  - The VirtualBox guest OS comes from the VM's settings. The libvirt guest OS comes from the QEMU guest agent
    when the running guest has one that answers (C(guest-get-osinfo), asked only when libvirt reports the agent
    connected, so a missing agent costs nothing), else from the libosinfo metadata that virt-install and
    virt-manager write, else it is reported as unknown (null), never guessed. RV(vms[].os_source) says which.
  - The P(pagefusion.core.guest_agent#role) role installs the agent in Linux guests;
    P(pagefusion.core.vm#module) adds the agent channel (O(pagefusion.core.vm#module:guest_agent_channel=true)).
  - VirtualBox is read with C(VBoxManage list vms) and C(VBoxManage showvminfo --machinereadable), under the
    C locale; the VMs of the user the module runs as are reported.
seealso:
  - module: pagefusion.core.vm
'''

EXAMPLES = r'''
- name: Which hosts and VMs can use page fusion?
  pagefusion.core.host_info:
  register: eligibility

- name: List eligible VMs that still have page fusion disabled
  ansible.builtin.debug:
    msg: >-
      {{ eligibility.vms | selectattr('eligible') | selectattr('page_fusion', 'eq', 'disabled')
         | map(attribute='name') | list }}

- name: A VirtualBox host (fails clearly when VBoxManage is missing)
  pagefusion.core.host_info:
    backend: virtualbox
  register: vbox

- name: Warn when this VirtualBox release cannot switch page fusion (7.2)
  ansible.builtin.debug:
    msg: "{{ vbox.backends.virtualbox.reasons }}"
  when: not vbox.backends.virtualbox.supported

- name: A remote libvirt host
  pagefusion.core.host_info:
    backend: libvirt
    uri: qemu+ssh://root@kvm-07.example.com/system
'''

RETURN = r'''
host:
  description: The host's platform.
  returned: always
  type: dict
  contains:
    machine:
      description: CPU architecture as the kernel names it.
      type: str
      sample: x86_64
    bits:
      description: 64 or 32.
      type: int
      sample: 64
    system:
      description: OS kernel name.
      type: str
      sample: Linux
    os:
      description: The OS release's pretty name, when known.
      type: str
      sample: Debian GNU/Linux 12 (bookworm)
ksm:
  description: Linux KSM on this host.
  returned: always
  type: dict
  contains:
    present:
      description: Whether the kernel has KSM (C(/sys/kernel/mm/ksm)).
      type: bool
    running:
      description: Whether ksmd runs (C(run) is 1).
      type: bool
    knobs:
      description: Every KSM knob this kernel has, with its current value.
      type: dict
      sample: {"run": 0, "pages_to_scan": 100, "sleep_millisecs": 20}
thp:
  description:
    - Transparent huge pages (C(/sys/kernel/mm/transparent_hugepage)) and whether they can undo KSM zero-page savings.
    - C(khugepaged) counts a KSM zero page as an empty entry and collapses a 2 MiB range with up to
      RV(thp.max_ptes_none) of them into a new huge page, so the zero pages become used memory again
      (measured in C(docs/thp-and-ksm-zero-pages.md)). The module warns when that can happen while KSM
      C(use_zero_pages) is on; M(pagefusion.core.ksm) O(pagefusion.core.ksm#module:thp_max_ptes_none=0) or
      the daemon's C(thp_max_ptes_none) setting prevents it.
  returned: always
  type: dict
  version_added: 0.1.0
  contains:
    present:
      description: Whether the kernel has khugepaged settings (C(khugepaged/max_ptes_none)).
      type: bool
    enabled:
      description: The THP mode, C(always), C(madvise) or C(never) (null without THP).
      type: str
      sample: madvise
    defrag:
      description: The THP defrag mode (null without THP).
      type: str
      sample: madvise
    max_ptes_none:
      description: khugepaged's C(max_ptes_none) (kernel default 511; null without THP).
      type: int
      sample: 511
    max_ptes_none_limit:
      description: The highest value C(max_ptes_none) takes, pages per huge page minus one (null without THP).
      type: int
      sample: 511
    zero_pages_at_risk:
      description: Whether khugepaged may turn KSM zero pages back into huge pages (THP not C(never) and RV(thp.max_ptes_none) above 0).
      type: bool
      sample: true
backends:
  description: One entry per backend that was looked at.
  returned: always
  type: dict
  contains:
    libvirt:
      description:
        - The libvirt backend.
        - C(free_page_reporting) says whether this host can give VMs free page reporting on their virtio balloon
          (O(pagefusion.core.vm#module:free_page_reporting)) - C(supported) (true only when both can), C(libvirt)
          (libvirt 6.9.0 or later), C(qemu) (QEMU 5.1.0 or later; null when the hypervisor is not QEMU, for
          example libvirt's C(test:///) driver), C(reasons) for every false or null. It is set when the URI
          answered.
      type: dict
      returned: when O(backend) is V(auto) or V(libvirt)
      sample:
        available: true
        uri: qemu:///system
        reachable: true
        libvirt_version: 9.0.0
        hypervisor: QEMU
        hypervisor_version: 7.2.0
        free_page_reporting: {"supported": true, "libvirt": true, "qemu": true, "reasons": []}
        eligible: true
        reasons: []
        cross_tenant_sharing: false
        sharing_tenants: {"acme": ["web-01", "web-02"]}
    virtualbox:
      description:
        - The VirtualBox backend.
        - C(present) is true when C(VBoxManage) is on the PATH, C(available) when it also answered and its VMs
          could be listed; C(error) says why not.
        - C(version) is the release (V(7.1.12)), C(version_full) what C(VBoxManage --version) printed.
        - C(supported) is false for releases that cannot switch page fusion (VirtualBox 7.2 and later, see
          U(https://github.com/VirtualBox/virtualbox/issues/268)); such hosts are reported, not failed.
        - C(eligible) is true when VirtualBox is available, the release is supported and the host is a 64-bit
          x86 host that is not macOS; C(reasons) explains every V(false).
      type: dict
      returned: when O(backend) is V(auto) or V(virtualbox)
      sample:
        present: true
        available: true
        path: /usr/bin/VBoxManage
        version: 7.1.12
        version_full: 7.1.12r169651
        supported: true
        eligible: true
        reasons: []
        error: null
eligible:
  description: Whether at least one backend on this host can use page fusion.
  returned: always
  type: bool
cross_tenant_sharing:
  description:
    - Whether VMs with different tenant labels already have page fusion enabled side by side on this host, on
      any backend; each backend entry says which (C(cross_tenant_sharing), C(sharing_tenants) - tenant label to
      the names of its VMs open to sharing). Such hosts need attention. See the O(pagefusion.core.vm#module:allow_cross_tenant) option.
  returned: always
  type: bool
vms:
  description:
    - Every VM of every reachable backend.
    - A VirtualBox VM is eligible only when the host is (see RV(backends.virtualbox)) and its guest OS type is
      Windows 2000 or later; VMs of other OS types and older Windows are listed with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
    backend:
      description: libvirt or virtualbox.
      type: str
    uuid:
      description: VM UUID.
      type: str
    power_state:
      description: Power state.
      type: str
    page_fusion:
      description: Page fusion in the persistent definition, V(enabled) or V(disabled).
      type: str
    page_fusion_live:
      description: Page fusion of the running instance; null when the VM is off.
      type: str
    os_id:
      description:
        - Guest OS identifier, null when unknown.
        - With RV(vms[].os_source=agent) the agent's OS id (the guest's C(/etc/os-release) C(ID) such as V(debian),
          or V(mswindows)); with V(libosinfo) the libosinfo id (V(http://microsoft.com/win/10)); with V(settings)
          the VirtualBox OS type id (V(Windows10_64)).
      type: str
    os_source:
      description:
        - Where RV(vms[].os_id) comes from, V(agent) (the QEMU guest agent of a running libvirt guest),
          V(libosinfo) (the libvirt domain's libosinfo metadata), V(settings) (the VirtualBox VM's OS type), or null
          when the guest OS is unknown.
        - libvirt eligibility does not depend on the guest OS (KSM merges any guest's RAM); the source is reported
          so that operators can see how far to trust RV(vms[].os_id).
      type: str
    os_name:
      description: The guest OS's pretty name as the guest agent reports it; null unless RV(vms[].os_source=agent).
      type: str
      sample: Debian GNU/Linux 12 (bookworm)
    guest_agent_channel:
      description: libvirt only. Whether the persistent definition has the QEMU guest agent channel.
      type: bool
      returned: for libvirt VMs
    free_page_reporting:
      description: libvirt only. Whether the persistent definition has free page reporting on the virtio balloon
        (C(<memballoon model='virtio' freePageReporting='on'/>)).
      type: bool
      returned: for libvirt VMs
    eligible:
      description: Whether page fusion would work for this VM on this host.
      type: bool
    reasons:
      description: Why not, when it is not eligible.
      type: list
      elements: str
    tenant:
      description: The VM's tenant label, null when it has none.
      type: str
'''

import os
import platform

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.pagefusion.core.plugins.module_utils._backends import (
    BACKEND_ARGS,
    libvirt_installed,
    open_backend,
)
from ansible_collections.pagefusion.core.plugins.module_utils._eligibility import (
    ksm_host_eligibility,
    machine_bits,
    vbox_host_eligibility,
    vbox_version_support,
)
from ansible_collections.pagefusion.core.plugins.module_utils._fusion import FusionError
from ansible_collections.pagefusion.core.plugins.module_utils._ksm import KsmSysfs, host_summary
from ansible_collections.pagefusion.core.plugins.module_utils._tenancy import cross_tenant_report
from ansible_collections.pagefusion.core.plugins.module_utils._thp import ThpSysfs, risk_warning


def os_pretty_name(path='/etc/os-release'):
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith('PRETTY_NAME='):
                    return line.split('=', 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def host_facts():
    uname = os.uname()
    return {'machine': uname.machine, 'bits': machine_bits(uname.machine), 'system': platform.system(),
            'os': os_pretty_name()}


def ksm_facts():
    """The KSM part of the host summary (its warnings are fusion_facts' business, not this report's)."""
    summary = host_summary(KsmSysfs(), ksmd_cpu=False)[0]
    return {'present': summary['ksm_present'], 'running': summary['ksm_running'], 'knobs': summary['knobs']}


def thp_facts(module, ksm):
    """Transparent huge pages, and a warning when khugepaged may turn KSM zero pages back into memory."""
    state = ThpSysfs().state()
    warning = risk_warning(state, ksm['knobs'].get('use_zero_pages'))
    if warning:
        module.warn(warning)
    return state


def vm_entry(backend, vm, host_ok, host_reasons):
    eligible, reasons = backend.eligibility(vm)
    entry = vm.summary()
    os_id, os_source, os_name = backend.guest_os(vm)
    entry.update({'os_id': os_id, 'os_source': os_source, 'os_name': os_name, 'eligible': host_ok and eligible,
                  'reasons': list(host_reasons) + reasons, 'tenant': vm.tenant})
    return entry


def read_vms(report, backend, host_ok, host_reasons):
    """Every VM of the backend, and which tenants already share its page fusion."""
    records = backend.list_vms()
    vms = [vm_entry(backend, vm, host_ok, host_reasons) for vm in records]
    report.update(cross_tenant_report(records))
    return vms


def read_backend(backend, report, read):
    """The VMs ``read(backend)`` returns (it fills ``report`` too); a FusionError becomes ``report['error']``."""
    if backend is None:
        return []
    try:
        return read(backend)
    except FusionError as exc:
        report['error'] = str(exc)
        return []
    finally:
        backend.close()


def libvirt_report(module, host, ksm, strict):
    backend, problems = open_backend(module, 'libvirt', required=False)
    report = {'available': libvirt_installed(), 'uri': module.params['uri'], 'reachable': False,
              'error': problems[0][1] if problems else None}
    report.update(cross_tenant_report([]))
    host_ok, host_reasons = ksm_host_eligibility(host['system'], ksm['present'])

    def read(backend):
        report.update(backend.versions())
        report['reachable'] = True
        return read_vms(report, backend, host_ok, host_reasons)

    vms = read_backend(backend, report, read)
    if strict and not report['available']:
        module.fail_json(msg=missing_required_lib('libvirt-python', reason='for backend=libvirt'))
    if strict and report['error']:
        module.fail_json(msg=report['error'])
    if report['error']:
        host_reasons = host_reasons + ['libvirt is not usable: %s' % report['error']]
    report['eligible'] = host_ok and report['reachable']
    report['reasons'] = host_reasons
    return report, vms


def virtualbox_report(module, host, strict):
    """VBoxManage, its release, whether this host and release can switch Page Fusion, and the VMs.

    An absent VBoxManage is reported (``present: false``); only ``strict`` (backend=virtualbox) fails.
    A release that cannot switch Page Fusion (7.2) is reported as unsupported, never failed.
    """
    backend, problems = open_backend(module, 'virtualbox', required=False, host=host)
    report = {'present': backend is not None, 'available': False, 'path': backend and backend.path, 'version': None,
              'version_full': None, 'supported': False, 'error': problems[0][1] if problems else None}
    report.update(cross_tenant_report([]))
    host_ok, reasons = vbox_host_eligibility(host['machine'], host['system'])

    def read(backend):
        versions = backend.versions()
        report.update(version=versions['version'], version_full=versions['version_full'])
        report['supported'], why = vbox_version_support(versions['version_full'])
        if not report['supported']:
            reasons.append(why)
        found = read_vms(report, backend, host_ok and report['supported'], reasons)
        report['available'] = True
        return found

    vms = read_backend(backend, report, read)
    if strict and report['error']:
        module.fail_json(msg=report['error'])
    if report['error']:
        reasons.append('VirtualBox is not usable: %s' % report['error'])
    report['eligible'] = report['available'] and report['supported'] and host_ok
    report['reasons'] = reasons
    return report, vms


def main():
    module = AnsibleModule(argument_spec=dict(BACKEND_ARGS), supports_check_mode=True)
    wanted = module.params['backend']
    host = host_facts()
    ksm = ksm_facts()
    thp = thp_facts(module, ksm)
    backends, vms = {}, []
    if wanted in ('auto', 'libvirt'):
        backends['libvirt'], found = libvirt_report(module, host, ksm, strict=wanted == 'libvirt')
        vms.extend(found)
    if wanted in ('auto', 'virtualbox'):
        backends['virtualbox'], found = virtualbox_report(module, host, strict=wanted == 'virtualbox')
        vms.extend(found)
    module.exit_json(changed=False, host=host, ksm=ksm, thp=thp, backends=backends, vms=vms,
                     cross_tenant_sharing=any(b['cross_tenant_sharing'] for b in backends.values()),
                     eligible=any(b['eligible'] for b in backends.values()))


if __name__ == '__main__':
    main()
